"""The sync socket: tell a supervisor about every status change, without ever being held up by it.

Wire format (docs/sync-socket.md says why): the supervisor listens on a UNIX SOCK_STREAM socket. For each
message the runtime connects, writes ONE JSON object (UTF-8, no newlines inside) followed by "\\n", and
closes. A supervisor reads each connection to EOF; a line without its "\\n" is a message cut short and must be
dropped. Connections arrive in the order the messages were sent.

publish() never raises and never blocks longer than its timeout (connect and send together): an absent
socket, a refused connection, a full backlog, a listener that never reads, a peer that hangs up -- each is
one warn() and a False. True means the whole message was handed to the kernel for a connected listener, not
that the supervisor has read it.

listen() is the reference listener: the tests use it, and a supervisor written in Python can too.
"""

from __future__ import annotations

import os
import select
import time

from state import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# sun_path is 108 bytes with its NUL; longer paths are reached through /proc/self/fd/<dir fd>/<name>.
_SUN_PATH_MAX = 107
_CONNECT_RETRY = 0.005  # seconds between connects while the listener's backlog is full
MAX_MESSAGE = 16 * 1024 * 1024  # what the reference listener accepts in one connection


def publish(
    socket_path: str,
    message: dict,
    *,
    timeout: float = 0.5,
    warn: Callable[[str], None],
) -> bool:
    """Send message (the container's state) as one JSON line to the listener at socket_path."""
    deadline = time.monotonic() + timeout
    try:
        # One small document per transition: state/jsonio (no orjson import on create and start: bench/README.md).
        data = jsonio.dumps(message).encode() + b"\n"
    except (TypeError, ValueError) as err:
        warn(f"sync socket {socket_path}: cannot encode the message: {err}")
        return False
    # _socket, not socket: socket.py costs ~5 ms of imports (enum wrappers, selectors) on every command that
    # publishes; the C module underneath is all this needs. Imported here: without a sync socket, nothing.
    import _socket

    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC | _socket.SOCK_NONBLOCK)
    except OSError as err:
        warn(f"sync socket {socket_path}: cannot create a socket: {err.strerror or err}")
        return False
    step = "connect"
    try:
        _connect(sock, socket_path, deadline)
        step = "send"
        _send_all(sock, data, deadline, _socket.MSG_NOSIGNAL)  # MSG_NOSIGNAL: EPIPE, never SIGPIPE
        return True
    except TimeoutError:
        warn(f"sync socket {socket_path}: {step} timed out after {timeout:g}s; message dropped")
    except OSError as err:
        warn(f"sync socket {socket_path}: cannot {step}: {err.strerror or err}; message dropped")
    finally:
        sock.close()
    return False


def _connect(sock, path: str, deadline: float) -> None:
    address, dir_fd = _address(path)
    try:
        while True:
            try:
                sock.connect(address)
                return
            except BlockingIOError as err:
                # A UNIX socket answers EAGAIN while the listener's backlog is full (nobody accepts): try
                # again until the deadline. EINPROGRESS does not happen for AF_UNIX; treat it the same.
                if time.monotonic() >= deadline:
                    raise TimeoutError from err
                time.sleep(min(_CONNECT_RETRY, max(deadline - time.monotonic(), 0)))
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)


def _address(path: str) -> tuple[str, int]:
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        return path, -1
    directory, name = os.path.split(path)
    dir_fd = os.open(directory or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{dir_fd}/{name}", dir_fd


def _send_all(sock, data: bytes, deadline: float, flags: int) -> None:
    view = memoryview(data)
    poller = None
    while view:
        try:
            view = view[sock.send(view, flags) :]
            continue
        except BlockingIOError:
            pass
        # The listener is not reading and the buffers are full: wait for room, but only until the deadline.
        if poller is None:
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLOUT)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(int(remaining * 1000) + 1):
            raise TimeoutError


class SyncListener:
    """The reference listener: bind at construction (so nothing published after it is lost), then iterate
    to get each message as a dict, in arrival order.

    Each connection is read to EOF (at most read_timeout seconds, at most MAX_MESSAGE bytes); every complete
    line that is a JSON object is one message; a last line without "\\n" was cut short and is dropped.
    stop() may be called from another thread and ends the iteration; close() also removes the socket file.
    """

    def __init__(self, socket_path: str, *, mode: int = 0o600, backlog: int = 128, read_timeout: float = 5.0):
        import socket
        import stat

        self.path = socket_path
        self.read_timeout = read_timeout
        try:
            if stat.S_ISSOCK(os.lstat(socket_path).st_mode):
                os.unlink(socket_path)  # a stale socket from a listener that died
        except FileNotFoundError:
            pass
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        address, dir_fd = _address(socket_path)
        try:
            self._sock.bind(address)
        finally:
            if dir_fd >= 0:
                os.close(dir_fd)
        os.chmod(socket_path, mode)
        self._sock.listen(backlog)
        self._wake_r, self._wake_w = os.pipe()
        self._stopped = False
        self._pending: list[dict] = []

    def __iter__(self) -> Iterator[dict]:
        return self

    def __next__(self) -> dict:
        while not self._pending:
            if self._stopped:
                raise StopIteration
            poller = select.poll()
            poller.register(self._sock.fileno(), select.POLLIN)
            poller.register(self._wake_r, select.POLLIN)
            for fd, events in poller.poll():
                if fd == self._wake_r or events & select.POLLNVAL:
                    self._stopped = True
            if self._stopped:
                raise StopIteration
            self._pending.extend(self._receive())
        return self._pending.pop(0)

    def _receive(self) -> list[dict]:
        conn, _ = self._sock.accept()
        chunks = []
        size = 0
        with conn:
            conn.settimeout(self.read_timeout)
            try:
                while size <= MAX_MESSAGE:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
            except OSError:  # timed out or reset: keep the complete lines we have
                pass
        import orjson  # a listener reads for as long as it runs: orjson's import pays off

        messages = []
        for line in b"".join(chunks).split(b"\n")[:-1]:
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(message, dict):
                messages.append(message)
        return messages

    def stop(self) -> None:
        """End the iteration (from any thread): the current or next __next__ raises StopIteration."""
        self._stopped = True
        os.write(self._wake_w, b"x")

    def close(self) -> None:
        """Stop, close the socket and remove its file. Call it after the iterating thread has finished."""
        if self._sock.fileno() < 0:
            return
        self.stop()
        self._sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        import contextlib  # the listener is not on the runtime's path; publish() does not pay for this

        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def __enter__(self) -> SyncListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def listen(socket_path: str, *, mode: int = 0o600, backlog: int = 128, read_timeout: float = 5.0) -> SyncListener:
    """Bind a reference listener at socket_path; iterate over it for the published messages (dicts)."""
    return SyncListener(socket_path, mode=mode, backlog=backlog, read_timeout=read_timeout)
