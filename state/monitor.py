"""The exit monitor: notices a container's init exiting and drives its machine to stopped.

One monitor per --root, shared by all its containers: it holds a pidfd per created/running container and
poll()s them, so it needs no child relationship with any init (conmon or containerd-shim stays the parent
that reaps it), and costs a few KiB per container instead of a process each.

- `ensure_running(root)` (called by create and start) pokes the monitor's socket so it rescans the state
  directory, or starts a monitor when none answers: a double-forked daemon, exec'd as a lean `python -S`,
  with /dev/null as stdio and every other fd closed (a supervisor's pipes must not be held open by it).
- A lock file makes sure one monitor per root runs; a second one started in a race exits at once.
- Everything is derived from the state directory, so a monitor that died is simply started again by the next
  command, and `engine state` stays truthful meanwhile (it checks the init itself).
- With nothing left to watch for IDLE_EXIT seconds, the monitor exits.

The exit status of a container is not known here (only the init's parent can wait for it).
"""

from __future__ import annotations

import fcntl
import os
import select
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

MONITOR_SOCKET = ".monitor.sock"
MONITOR_LOCK = ".monitor.lock"
IDLE_EXIT = 5.0
CONNECT_TIMEOUT = 0.2


def ensure_running(root: str) -> None:
    """Tell the root's monitor to rescan, starting one if none answers. Never fails the caller."""
    # _socket, not socket: create and start call this, and socket imports enum and selectors (~5 ms) on top of
    # the one connect needed here. Not contextlib either, for the same reason.
    import _socket

    path = os.path.join(root, MONITOR_SOCKET)
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(path)
            sock.sendall(b"rescan\n")
            return
        finally:
            sock.close()
    except OSError:
        pass
    try:  # noqa: SIM105 - contextlib.suppress: see above
        _spawn(root)
    except OSError:
        pass


def _spawn(root: str) -> None:
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
        os.closerange(3, 1 << 20)
        paths = [p for p in sys.path if p]
        code = f"import sys; sys.path[:0] = {paths!r}; from state.monitor import main; main({root!r})"
        os.execv(sys.executable, [sys.executable, "-S", "-c", code])
    finally:
        os._exit(1)


def main(root: str) -> None:
    import contextlib
    import socket

    from state.store import Store

    store = Store(root)
    store.ensure_root()
    lock_fd = os.open(os.path.join(store.root, MONITOR_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another monitor owns this root
    sock_path = os.path.join(store.root, MONITOR_SOCKET)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock_path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    server.bind(sock_path)
    os.chmod(sock_path, 0o600)
    server.listen(64)
    try:
        Monitor(store, server).loop()
    finally:
        # Unlink while still holding the lock, so a new monitor never loses its fresh socket to us.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sock_path)
        server.close()


class Monitor:
    def __init__(self, store: object, server: socket.socket) -> None:
        self.store = store
        self.server = server
        self.poller = select.poll()
        self.poller.register(server, select.POLLIN)
        self.by_fd: dict[int, str] = {}
        self.by_id: dict[str, int] = {}

    def loop(self) -> None:
        self.rescan()
        idle_since = time.monotonic()
        while True:
            if not os.path.isdir(self.store.root):
                return  # the root was removed under us: nothing left to keep truthful
            if self.by_id:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_EXIT:
                return
            for fd, _ in self.poller.poll(1000):
                if fd == self.server.fileno():
                    self._accept()
                    self.rescan()
                elif fd in self.by_fd:
                    self._exited(fd)

    def _accept(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        conn.close()  # the connection itself is the message: rescan

    def rescan(self) -> None:
        from engine.container import open_pidfd
        from engine.errors import EngineError
        from state import process
        from state.rules import ALIVE

        for container_id in self.store.ids():
            if container_id in self.by_id:
                continue
            try:
                record = self.store.load(container_id)
            except EngineError:
                continue
            if record.status not in ALIVE:
                continue  # creating: create pokes us once it is created
            if process.is_alive(record.reaper_pid, record.reaper_start_time):
                continue  # `engine run` is waiting for it and will record the exit status
            pidfd = open_pidfd(record)
            if pidfd is None:
                self._mark_stopped(container_id)
                continue
            self.by_fd[pidfd] = container_id
            self.by_id[container_id] = pidfd
            self.poller.register(pidfd, select.POLLIN)

    def _exited(self, pidfd: int) -> None:
        container_id = self.by_fd.pop(pidfd)
        del self.by_id[container_id]
        self.poller.unregister(pidfd)
        os.close(pidfd)
        self._mark_stopped(container_id)

    def _mark_stopped(self, container_id: str) -> None:
        from engine.errors import EngineError
        from state.machine import Lifecycle
        from state.rules import ALIVE, STOPPED

        try:
            with self.store.locked(container_id) as dir_fd:
                record = self.store.load(container_id, dir_fd)
                if record.status in ALIVE and record.observed_status() == STOPPED:
                    Lifecycle(record, self.store).fire("stop")
        except (EngineError, OSError):
            pass
