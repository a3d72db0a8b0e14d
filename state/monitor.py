"""The exit monitor: notices a container's init exiting and drives its machine to stopped.

One monitor per --root, shared by all its containers: it holds a pidfd per created/running container and
waits on them (epoll), so it needs no child relationship with any init (conmon or containerd-shim stays the
parent that reaps it), and costs a few KiB per container instead of a process each.

- `ensure_running(root, container_id)` (called by create) pokes the monitor's socket with the id of the
  container just created, for it to look at that container, or starts a monitor when none answers: a
  double-forked daemon, exec'd as a lean `python -S`, with /dev/null as stdio and every other fd closed (a
  supervisor's pipes must not be held open by it). `start` only asks `Store.monitor_running()`
  (state/store.py), and calls ensure_running when no monitor holds the lock.
- A lock file makes sure one monitor per root runs; a second one started in a race exits at once.
- Everything is derived from the state directory, so a monitor that died is simply started again by the next
  command, and `engine state` stays truthful meanwhile (it checks the init itself).
- Why a poke names its container (bench/scale_probe.py): with 1000 containers in the root, a rescan of the whole
  root per create (list it, sort it, look each entry up) and a poll() of 1000 pidfds per wake-up took the monitor
  3.4 ms of CPU per `run -d` (0.7 ms with one container), competing with the commands on a 2-core machine: one
  more container cost more the more there were. Now each event costs the same at any N (0.6 ms at 1000 as at
  one): a named poke checks that container, and epoll reports only the fds that are ready.
- The whole root is still rescanned whenever a poke might have been missed: when the monitor starts, after it
  stops listening (idle), and for a poke that names nothing (an older engine, or a send that failed). Every path
  to "watched" goes through `_consider`, the same check for a named container and for each entry of a rescan, so
  a named poke does exactly what the rescan it replaces did for the one entry that changed.
- With nothing left to watch for IDLE_EXIT seconds, the monitor exits.

The exit status of a container is not known here (only the init's parent can wait for it).
"""

from __future__ import annotations

import fcntl
import os
import select
import sys
import time

from engine.errors import suppress
from state.store import MONITOR_LOCK

TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket

MONITOR_SOCKET = ".monitor.sock"
IDLE_EXIT = 5.0
CONNECT_TIMEOUT = 0.2
SPAWN_WAIT = 1.0  # at most this long for a monitor on its way out to go


def ensure_running(root: str, container_id: str | None = None) -> None:
    """Tell the root's monitor that `container_id` was created (None: rescan the whole root), starting a monitor
    if none answers (it scans the whole root as it starts). Never fails the caller."""
    # _socket, not socket: create and start call this, and socket imports enum and selectors (~5 ms) on top of
    # the one connect needed here. Not contextlib either, for the same reason.
    import _socket

    path = os.path.join(root, MONITOR_SOCKET)
    deadline = time.monotonic() + SPAWN_WAIT
    while True:
        try:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            try:
                sock.settimeout(CONNECT_TIMEOUT)
                sock.connect(path)
                if container_id is not None:
                    # The id, then our close (EOF) ends the message. It waits in the connection's buffer if the
                    # monitor has not accepted yet. A monitor that closed the connection without reading
                    # (EPIPE: an older engine's, which rescans on every connection) got the poke anyway.
                    with suppress(OSError):
                        sock.send(container_id.encode())
                return
            finally:
                sock.close()
        except OSError:
            pass
        try:
            claimed = _claim(root, path)
        except OSError:
            return
        if claimed is not None:
            lock_fd, server_fd = claimed
            try:
                _spawn(root, lock_fd, server_fd)
            except OSError:
                pass
            finally:
                os.close(lock_fd)
                os.close(server_fd)
            return
        # The lock is held but nothing listens: a monitor is on its way out (it unlinks the socket before it
        # lets the lock go). Wait for it to go, then start the next one; bounded, as a monitor is only a help.
        if time.monotonic() > deadline:
            return
        time.sleep(0.002)


def _claim(root: str, path: str) -> tuple[int, int] | None:
    """The root's monitor lock and a listening socket, made here for the monitor to be: so the socket answers
    (connections wait in its backlog) from the moment the spawn starts, not once a new interpreter has started,
    and a command right after this one (`engine start` after `engine create`) finds it instead of spawning a
    second monitor. None if a monitor holds the lock."""
    lock_fd = os.open(os.path.join(root, MONITOR_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        return None
    try:
        with suppress(FileNotFoundError):
            os.unlink(path)  # a dead monitor's socket
        server = _listening_socket(path)
    except BaseException:
        os.close(lock_fd)
        raise
    return lock_fd, server.detach()


def _listening_socket(path: str) -> _socket.socket:
    """The monitor's socket at `path`: the root's owner's only (0600), with room for a burst of pokes."""
    import _socket

    server = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        server.bind(path)
        os.chmod(path, 0o600)
        server.listen(64)
    except BaseException:
        server.close()
        raise
    return server


def _spawn(root: str, lock_fd: int, server_fd: int) -> None:
    pid = os.fork()
    if pid != 0:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        # The lock and the socket, at fds 3 and 4 (inheritable); every other fd closed. Copies above 9 first,
        # so that moving one into place cannot close the other.
        lock_copy = fcntl.fcntl(lock_fd, fcntl.F_DUPFD_CLOEXEC, 10)
        server_copy = fcntl.fcntl(server_fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.dup2(lock_copy, 3)
        os.dup2(server_copy, 4)
        os.closerange(5, 1 << 20)
        paths = [p for p in sys.path if p]
        code = f"import sys; sys.path[:0] = {paths!r}; from state.monitor import main; main({root!r})"
        os.execv(sys.executable, [sys.executable, "-S", "-c", code])
    finally:
        os._exit(1)


def main(root: str, lock_fd: int = 3, server_fd: int = 4) -> None:
    """The monitor, exec'd by _spawn with the root's lock held and its socket listening on these fds."""
    # _socket, not socket, and no contextlib: those two and what they import (enum, selectors, collections,
    # functools) were ~10 ms of the monitor's ~25 ms start, paid again whenever a root's monitor idled out.
    import _socket

    from state.store import Store

    store = Store(root)
    os.set_inheritable(lock_fd, False)
    os.set_inheritable(server_fd, False)
    server = _socket.socket(fileno=server_fd)
    sock_path = os.path.join(store.root, MONITOR_SOCKET)
    monitor = Monitor(store, server)
    while True:
        monitor.loop()
        # Idle. Unlink while still holding the lock, so a new monitor never loses its fresh socket to us; from
        # here on a command that pokes finds no socket and waits for the lock (ensure_running).
        with suppress(FileNotFoundError):
            os.unlink(sock_path)
        monitor.stop_listening()
        # A command that wrote its container and poked just before the unlink may not have been seen.
        if not os.path.isdir(store.root):
            return
        monitor.rescan()
        if not monitor.by_id:
            return
        monitor.listen_on(_listening_socket(sock_path))


MAX_POKE = 4096  # longer than any id (state/ids.py: 1024): a poke that says more names nothing we know


class Monitor:
    def __init__(self, store: object, server: _socket.socket) -> None:
        self.store = store
        # epoll, not poll: poll() hands the kernel every pidfd on each call (1000 containers, 1000 fds per wake).
        self.poller = select.epoll()
        self.listen_on(server)
        self.by_fd: dict[int, str] = {}
        self.by_id: dict[str, int] = {}
        # Accepted pokes still being read: fd -> the bytes so far (the container's id, ended by the poker's close).
        self.pokes: dict[int, bytes] = {}
        # Containers whose state.json said "nothing to watch" (creating, stopped): the file's (inode, mtime) then.
        # Each full rescan would otherwise re-read and decode every creating or stopped neighbour's state.json. A
        # stat tells whether it changed (every write is a rename: a new inode and mtime).
        self.unwatched: dict[str, tuple[int, int]] = {}
        self._prune_at = 64  # named pokes add to `unwatched` without a rescan to prune it: see _forget_deleted

    def listen_on(self, server: _socket.socket) -> None:
        self.server = server
        self.poller.register(server.fileno(), select.EPOLLIN)

    def stop_listening(self) -> None:
        self.poller.unregister(self.server.fileno())
        self.server.close()
        for fd in list(self.pokes):  # their containers are covered by the rescan that follows (main)
            self._drop_poke(fd)

    def loop(self) -> None:
        self.rescan()
        idle_since = time.monotonic()
        while True:
            if not os.path.isdir(self.store.root):
                return  # the root was removed under us: nothing left to keep truthful
            if self.by_id or self.pokes:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_EXIT:
                return
            self.step(1.0)

    def step(self, timeout: float) -> None:
        """Wait up to `timeout` seconds, then handle whatever is ready: a new poke, a poke's bytes, an exit."""
        for fd, _ in self.poller.poll(timeout):
            if fd == self.server.fileno():
                self._accept()
            elif fd in self.pokes:
                self._read_poke(fd)
            elif fd in self.by_fd:
                self._exited(fd)

    def _accept(self) -> None:
        try:
            conn, _ = self.server._accept()  # _socket's accept: the new connection's fd
        except OSError:
            return
        os.set_blocking(conn, False)
        self.pokes[conn] = b""
        self.poller.register(conn, select.EPOLLIN)

    def _read_poke(self, fd: int) -> None:
        while True:  # the id and the poker's close usually arrive together: one wake-up, not two
            try:
                data = os.read(fd, MAX_POKE)
            except BlockingIOError:
                return  # the rest (or the end) later
            except OSError:
                data = b""
            if not data or len(self.pokes[fd]) + len(data) > MAX_POKE:
                message = self.pokes[fd] if not data else b""
                self._drop_poke(fd)
                self.poked(message)
                return
            self.pokes[fd] += data

    def _drop_poke(self, fd: int) -> None:
        del self.pokes[fd]
        self.poller.unregister(fd)
        os.close(fd)

    def poked(self, message: bytes) -> None:
        """A poke, read to its end: the id of a container that was created, or anything else (nothing: an older
        engine's poke, or one whose send failed) for a rescan of the whole root."""
        from state.ids import InvalidId, validate_id

        try:
            container_id = validate_id(message.decode("ascii"))
        except (UnicodeDecodeError, InvalidId):
            self.rescan()
            return
        if container_id not in self.by_id:
            self._consider(container_id)
        self._forget_deleted()

    def rescan(self) -> None:
        ids = self.store.ids()
        for container_id in ids:
            if container_id not in self.by_id:
                self._consider(container_id)
        if len(self.unwatched) > len(ids):  # deleted containers' entries
            present = set(ids)
            self.unwatched = {key: value for key, value in self.unwatched.items() if key in present}
        self._prune_at = 2 * len(self.unwatched) + 64

    def _consider(self, container_id: str) -> None:
        """Watch the container if its init is alive and no `engine run` waits for it; record it stopped if the
        init is gone. For one entry of the root, not yet watched."""
        from engine.container import open_pidfd
        from engine.errors import EngineError
        from state import process
        from state.rules import ALIVE
        from state.store import STATE_FILE

        try:
            seen = os.stat(self.store.path(container_id, STATE_FILE))
        except OSError:
            return  # being reserved or removed: a later poke finds it
        version = (seen.st_ino, seen.st_mtime_ns)
        if self.unwatched.get(container_id) == version:
            return
        try:
            record = self.store.load(container_id)
        except EngineError:
            return
        if record.status not in ALIVE:
            # creating: create pokes us once it is created; stopped: until it is deleted. Either way only a new
            # state.json changes the answer (a record loaded after the stat is at least as new).
            self.unwatched[container_id] = version
            return
        self.unwatched.pop(container_id, None)
        if process.is_alive(record.reaper_pid, record.reaper_start_time):
            return  # `engine run` is waiting for it and will record the exit status
        pidfd = open_pidfd(record)
        if pidfd is None:
            self._mark_stopped(container_id)
            return
        self.by_fd[pidfd] = container_id
        self.by_id[container_id] = pidfd
        self.poller.register(pidfd, select.EPOLLIN)

    def _forget_deleted(self) -> None:
        """Drop the entries of deleted containers from `unwatched` once it has doubled since the last pruning: a
        check per entry, but amortised over as many pokes, so each poke stays O(1)."""
        if len(self.unwatched) <= self._prune_at:
            return
        self.unwatched = {key: value for key, value in self.unwatched.items() if os.path.lexists(self.store.path(key))}
        self._prune_at = 2 * len(self.unwatched) + 64

    def _exited(self, pidfd: int) -> None:
        container_id = self.by_fd.pop(pidfd)
        del self.by_id[container_id]
        self.poller.unregister(pidfd)
        os.close(pidfd)
        self._mark_stopped(container_id)

    def _mark_stopped(self, container_id: str) -> None:
        from engine.errors import EngineError
        from state.lifecycle import Lifecycle
        from state.rules import ALIVE, STOPPED

        try:
            with self.store.locked(container_id) as dir_fd:
                record = self.store.load(container_id, dir_fd)
                if record.status in ALIVE and record.observed_status() == STOPPED:
                    Lifecycle(record, self.store).fire("stop")
        except (EngineError, OSError):
            pass
