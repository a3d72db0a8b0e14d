"""The console: config.md `process.terminal` and `consoleSize`, and the --console-socket hand-off.

With `"terminal": true` the container's process gets a pseudoterminal, allocated INSIDE the container from
its own devpts instance (so `tty` says /dev/pts/0 and the pty is scoped to the container, runc#814), and
the master end goes out over a UNIX socket with SCM_RIGHTS to whoever holds the terminal on the host:

    engine create --console-socket S        connects to S itself, on the host, as the caller (runc does the
                                            same): the init may not reach S (a user namespace's root and a
                                            0700 directory), and never holds a connection to it
      init, after pivot_root:               opens /dev/pts/ptmx, sizes the pty, binds it on /dev/console,
                                            passes the master back over the create channel, makes the slave
                                            its controlling terminal and its fds 0, 1, 2, then waits for
                                            `start` as usual
      engine create:                        checks it is a pty master and sends it over S (forward_master)
    receiver (conmon, containerd's shim,    gets one message: payload = the master's name, one fd
      runc's recvtty, tests/console_receiver.py, or `engine run` itself through ConsoleSocket)

Wire format (what runc sends, libcontainer/utils/cmsg.go SendRawFd): one sendmsg on a SOCK_STREAM
connection whose data is the master's file name without a trailing NUL, and whose ancillary data is one
SCM_RIGHTS message carrying exactly one fd. Receivers ignore the name (go-runc and runc's RecvFd use it only
as the os.File's name, conmon logs it) but insist on exactly one fd (runc/go-runc: oobn == CmsgSpace(4),
conmon: cmsg_len == CMSG_LEN(sizeof(int))) and on a name shorter than 4096 bytes.

`engine run` without --console-socket is its own receiver: ConsoleSocket.temporary() + ConsoleRelay, which
puts the caller's terminal in raw mode and copies bytes both ways until the pty hangs up.

The container's half (allocating the pty, /dev/console, the controlling terminal) is engine/pty.py. Everything
the init calls here and there uses only the standard library and modules `engine.init` already imports: both
are imported at the top of the init, before pivot_root hides the engine's files.
"""

from __future__ import annotations

import _signal  # not signal: its enum wrappers import enum (~1.5 ms of create)
import _socket  # not socket (enum, selectors): the init sends the pty master with it
import errno
import fcntl
import os
import select
import stat
import struct
import termios

from engine.errors import EngineError, suppress
from engine.linux import scm
from state import jsonio

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    import socket
    from types import FrameType, TracebackType
    from typing import Any

# The error texts runc prints (utils_linux.go checkTerminal), with our name in runc's place.
CONSOLE_SOCKET_REQUIRED = "cannot allocate tty if engine will detach without setting console socket"
CONSOLE_SOCKET_UNUSED = "cannot use console socket if engine will not detach or allocate tty"

# The name sent with the master. runc >= 1.3 allocates from /dev/pts/ptmx and sends that handle's name;
# older runc opened /dev/ptmx and sent "/dev/ptmx". Either way it names the master, never the slave.
MASTER_NAME = "/dev/pts/ptmx"
MAX_NAME_LEN = 4096  # runc's utils.MaxNameLen, conmon's TAG_BUFFER: a longer name is an error there

PTMX_RDEV = os.makedev(5, 2)  # TTYAUX_MAJOR, minor 2
MAX_WINSIZE = 0xFFFF  # struct winsize holds unsigned shorts


class ConsoleError(EngineError):
    """Setting up, passing or relaying the console failed; the message is the one line the user sees."""


# --- Checks for the commands ---------------------------------------------------------------------------


def check_terminal(terminal: bool, console_socket: str | None, detach: bool) -> None:
    """runc's checkTerminal: a detached terminal needs somewhere to send the master, and only it may use one.

    `engine create` always detaches (detach=True); `engine run` detaches with --detach.
    """
    if detach and terminal and not console_socket:
        raise ConsoleError(CONSOLE_SOCKET_REQUIRED)
    if (not detach or not terminal) and console_socket:
        raise ConsoleError(CONSOLE_SOCKET_UNUSED)


def read_bundle_config(bundle: str) -> bytes | None:
    """The bundle's config.json as it is now, None if it cannot be read (`create` then reads it and says why):
    `engine run` reads it once, for process.terminal here and for create (CreateOptions.config_data)."""
    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            return f.read()
    except OSError:
        return None


def terminal_in(config_data: bytes | None) -> bool:
    """process.terminal of config.json's bytes, read cheaply (no pydantic, unvalidated) for `engine run`'s checks;
    False for anything but a JSON object that says so: `create` reports an unreadable or invalid config right after."""
    if config_data is None:
        return False
    try:
        config = jsonio.loads(config_data)
        return bool(config.get("process", {}).get("terminal", False))
    except (ValueError, AttributeError):
        return False


# --- The socket and the fd passing ---------------------------------------------------------------------


def connect_console_socket(path: str) -> socket.socket:
    """Connect to --console-socket, on the host, as the caller: `engine create` and `engine exec` before they
    fork (a relative path is taken from the current directory, as runc's net.Dial does)."""
    import socket  # only with --console-socket, on the host before any fork: socket.socket for the callers

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise ConsoleError(f"--console-socket {path}: cannot connect: {err.strerror or err}") from None
    return sock


def send_master(sock: _socket.socket, master: int, name: str = MASTER_NAME) -> None:
    """Send `master` the way runc's SendRawFd does: data = the name (no NUL), one SCM_RIGHTS fd.

    SOCK_STREAM drops ancillary data sent without at least one byte of data (unix(7)), which is one reason
    the name travels along; it must be non-empty.
    """
    payload = name.encode()
    if not payload or len(payload) >= MAX_NAME_LEN:
        raise ConsoleError(f"console socket: the master's name must be 1 to {MAX_NAME_LEN - 1} bytes")
    rights = scm.rights(master)
    try:
        sent = sock.sendmsg([payload], rights)
        if sent < len(payload):  # the fd went with the first byte; the rest of the name is plain data
            sock.sendall(payload[sent:])
    except OSError as err:
        raise ConsoleError(f"console socket: cannot send the pty master: {err.strerror or err}") from None


def forward_master(sock: _socket.socket, master: int) -> None:
    """`engine create`'s half of the hand-off: the master the init allocated, and passed back over the create
    channel, goes to --console-socket in runc's format, once it is known to be a pty master (a character device
    5:2, the multiplexer's number) and not some other file of the container's."""
    st = os.fstat(master)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != PTMX_RDEV:
        raise ConsoleError("process.terminal: the container's init passed back something that is not a pty master")
    send_master(sock, master)


def receive_fd(sock: _socket.socket) -> tuple[int, str]:
    """The counterpart of send_master: one message, exactly one fd. Returns (fd, name); the fd is CLOEXEC.

    Room is made for a few fds so that a sender passing more than one is reported (and none leak) rather
    than having the extra ones silently dropped by the kernel.
    """
    try:
        data, ancillary, flags, _ = sock.recvmsg(MAX_NAME_LEN, scm.space(4), _socket.MSG_CMSG_CLOEXEC)
    except OSError as err:
        raise ConsoleError(f"console socket: cannot receive the pty master: {err.strerror or err}") from None
    fds = scm.received_fds(ancillary)
    problem = None
    if flags & _socket.MSG_CTRUNC:
        problem = "the control message was truncated (more fds than expected?)"
    elif not fds:
        problem = "a message arrived without a file descriptor" if data else "the connection closed, no pty master"
    elif len(fds) != 1:
        problem = f"expected one file descriptor, got {len(fds)}"
    elif len(data) >= MAX_NAME_LEN:
        problem = f"the master's name is {len(data)} bytes or longer, the limit is {MAX_NAME_LEN - 1}"
    if problem:
        for fd in fds:
            with suppress(OSError):
                os.close(fd)
        raise ConsoleError(f"console socket: {problem}")
    return fds[0], data.decode(errors="replace")


def receive_master(sock: _socket.socket) -> int:
    """Receive the pty master sent by the container's init (recvtty's RecvFd). The caller owns the fd."""
    fd, _ = receive_fd(sock)
    return fd


class ConsoleSocket:
    """A listening --console-socket that takes one pty master: what `engine run` (and go-runc's
    NewTempConsoleSocket) hands to create when the caller gave none.

    The init connects during create and sends before create returns; the kernel queues the connection
    and the message, so the owner may accept after create() has returned.
    """

    def __init__(self, path: str, *, remove_dir: bool = False) -> None:
        self.path = os.path.abspath(path)
        self._remove_dir = remove_dir
        import socket  # the host side of `engine run` only (accept, timeouts): the init never needs it

        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self._listener.bind(self.path)
            self._listener.listen(1)
        except OSError as err:
            self._listener.close()
            raise ConsoleError(f"console socket {self.path}: cannot listen: {err.strerror or err}") from None

    @classmethod
    def temporary(cls) -> ConsoleSocket:
        """A socket in a new private (0700) directory, removed again by close()."""
        import shutil  # the host side of `engine run` only
        import tempfile

        directory = tempfile.mkdtemp(prefix="engine-console-")
        try:
            return cls(os.path.join(directory, "pty.sock"), remove_dir=True)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise

    def receive_master(self, timeout: float | None = None) -> int:
        """Accept one connection and return the master it carries. The caller owns the fd."""
        self._listener.settimeout(timeout)
        try:
            conn, _ = self._listener.accept()
        except TimeoutError:
            raise ConsoleError(f"console socket {self.path}: no pty master arrived within {timeout}s") from None
        with conn:
            conn.settimeout(timeout)
            return receive_master(conn)

    def close(self) -> None:
        self._listener.close()
        with suppress(FileNotFoundError):
            os.unlink(self.path)
        if self._remove_dir:
            import shutil

            shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)

    def __enter__(self) -> ConsoleSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- Window sizes (the pty's consoleSize and run's relay) ---------------------------------------------


def window_size(fd: int) -> tuple[int, int]:
    """(height, width) of the terminal `fd` refers to."""
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))
    return rows, cols


def set_window_size(fd: int, height: int, width: int) -> None:
    """TIOCSWINSZ; on a pty master or slave alike (they share one tty). The kernel SIGWINCHes the
    foreground process group when the size changes."""
    for name, value in (("height", height), ("width", width)):
        if not 0 <= value <= MAX_WINSIZE:
            raise ConsoleError(f"process.consoleSize.{name}: {value} is out of range (0 to {MAX_WINSIZE})")
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


# --- The host side of `engine run`: relaying the caller's terminal -------------------------------------

_TERMINATING = (_signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT)


class ConsoleRelay:
    """Connect the caller's stdin/stdout to a container's pty master until the pty hangs up.

    - If stdin is a terminal it goes into raw mode (keys, ^C included, go to the container's terminal,
      whose own line discipline echoes and signals) and is restored by close(), at exit, or before a
      terminating signal that would otherwise kill us takes effect.
    - The caller's window size (stdin, stdout or stderr, whichever is a terminal) is copied to the pty at
      start() and on every SIGWINCH: the caller's terminal wins over consoleSize, as with `runc run`.
    - When stdin is not a terminal, its bytes are copied as they are; at its EOF one VEOF character (^D) is
      written, so a program reading the terminal in canonical mode sees end of input (runc sends nothing
      and such a program would wait forever).
    - The pty's own settings are left alone (runc clears ONLCR on it; we do not, so `stty -a` in the
      container shows the usual defaults); raw mode clears OPOST on the caller's side instead, so "\r\n"
      from the pty is not doubled.

    Use as a context manager, or start() then close(). The copying runs in a daemon thread; the signal
    handling must be set up from the main thread (start() skips it elsewhere).
    """

    def __init__(self, master: int, stdin: int = 0, stdout: int = 1, *, raw: bool = True) -> None:
        import threading  # the relay is the host side of `engine run` only: create and the init never load it

        self.master = master  # owned: closed by close()
        self.stdin = stdin
        self.stdout = stdout
        self._raw = raw and os.isatty(stdin)
        self._saved_termios: list[Any] | None = None
        self._size_fd = next((fd for fd in (stdin, stdout, 2) if os.isatty(fd)), None)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread: threading.Thread | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._stopped = threading.Event()
        self._closed = False
        self.error: BaseException | None = None  # what stopped the copying early, if anything

    # Lifecycle

    def start(self) -> ConsoleRelay:
        import atexit
        import threading
        import tty

        if self._raw:
            self._saved_termios = termios.tcgetattr(self.stdin)
            atexit.register(self._restore_terminal)
            tty.setraw(self.stdin, termios.TCSANOW)
        if threading.current_thread() is threading.main_thread():
            self._install_handlers()
        self.resize()
        os.set_blocking(self.master, False)  # never stall output while input waits for room, and vice versa
        self._thread = threading.Thread(target=self._pump, name="console-relay", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the copying stops: the pty hung up (every slave fd closed, the container is gone), or
        close() or an error (see .error) stopped it. False if `timeout` passed first."""
        return self._stopped.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Drain what the container wrote (up to `timeout` for the hang-up), then restore and release.

        A process outside the container's pid namespace could hold the slave open forever; the timeout
        stops the relay anyway.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._thread is not None:
                self._thread.join(timeout)
                if self._thread.is_alive():
                    with suppress(OSError):
                        os.write(self._wake_w, b"x")
                    self._thread.join()
        finally:
            self._uninstall_handlers()
            self._restore_terminal()
            for fd in (self.master, self._wake_r, self._wake_w):
                with suppress(OSError):
                    os.close(fd)

    def __enter__(self) -> ConsoleRelay:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # Terminal state and signals

    def resize(self) -> None:
        """Copy the caller's window size to the pty (a 0x0 size, as some consoles report, is skipped)."""
        if self._size_fd is None or self._closed:
            return
        with suppress(OSError):
            height, width = window_size(self._size_fd)
            if height and width:
                set_window_size(self.master, height, width)

    def _restore_terminal(self) -> None:
        saved, self._saved_termios = self._saved_termios, None
        if saved is not None:
            import atexit  # loaded already by start(), which saved the settings

            with suppress(termios.error, OSError):
                # TCSANOW: waiting for output to drain could hang on a terminal nobody reads any more.
                termios.tcsetattr(self.stdin, termios.TCSANOW, saved)
            atexit.unregister(self._restore_terminal)

    def _install_handlers(self) -> None:
        self._previous_handlers[_signal.SIGWINCH] = _signal.signal(_signal.SIGWINCH, self._on_sigwinch)
        if self._raw:
            # Only where the signal would kill us outright: handlers the command installed (forwarding to
            # the container) stay in charge and keep us alive to restore on the normal path, and SIGINT's
            # KeyboardInterrupt already unwinds through close().
            for sig in _TERMINATING:
                if _signal.getsignal(sig) == _signal.SIG_DFL:
                    self._previous_handlers[sig] = _signal.signal(sig, self._on_terminating)

    def _uninstall_handlers(self) -> None:
        handlers, self._previous_handlers = self._previous_handlers, {}
        ours = (self._on_sigwinch, self._on_terminating)
        for sig, previous in handlers.items():
            # Someone (the run command's forwarding) may have taken the signal over since: leave theirs.
            with suppress(ValueError, TypeError):  # not the main thread / not a Python handler
                if _signal.getsignal(sig) in ours:
                    _signal.signal(sig, previous if previous is not None else _signal.SIG_DFL)

    def _on_sigwinch(self, number: int, frame: FrameType | None) -> None:
        self.resize()

    def _on_terminating(self, number: int, frame: FrameType | None) -> None:
        """Restore the caller's terminal, then die of the signal as we would have without this handler."""
        self._restore_terminal()
        _signal.signal(number, _signal.SIG_DFL)
        os.kill(os.getpid(), number)

    # Copying

    def _pump(self) -> None:
        try:
            self._copy_loop()
        except BaseException as err:  # the main thread decides; a traceback on the raw terminal helps nobody
            self.error = err
        finally:
            self._stopped.set()

    def _copy_loop(self) -> None:
        poller = select.poll()
        stdin_open = True
        stdout_ok = True
        pending = b""  # input read from stdin, not yet accepted by the pty
        veof = termios.tcgetattr(self.master)[6][termios.VEOF]
        veof = bytes([veof]) if isinstance(veof, int) else veof
        stdin_is_tty = os.isatty(self.stdin)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            # Stop reading stdin while the container is not reading its terminal: no unbounded buffering.
            if stdin_open and len(pending) < 65536:
                poller.register(self.stdin, select.POLLIN)
            else:
                with suppress(KeyError):
                    poller.unregister(self.stdin)
            poller.register(self.master, select.POLLIN | (select.POLLOUT if pending else 0))
            events = dict(poller.poll())
            if self._wake_r in events:
                return
            master_events = events.get(self.master, 0)
            if master_events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                data = _read(self.master)
                if data == b"":
                    return  # EIO: every slave fd is closed and everything it wrote has been read
                if data and stdout_ok:
                    stdout_ok = _write_all(self.stdout, data)  # False after EPIPE: keep draining, discard
            if master_events & select.POLLOUT and pending:
                try:
                    pending = pending[os.write(self.master, pending) :]
                except BlockingIOError:
                    pass
                except OSError as err:
                    if err.errno != errno.EIO:
                        raise
                    pending = b""  # the container is gone; what it wrote is still read above until EIO
            stdin_events = events.get(self.stdin, 0)
            if stdin_events & select.POLLNVAL:
                stdin_open = False
            elif stdin_events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                try:
                    chunk = os.read(self.stdin, 65536)
                except BlockingIOError:
                    chunk = None
                except OSError:
                    chunk = b""  # EIO from a terminal that went away: no more input
                if chunk:
                    pending += chunk
                elif chunk == b"":
                    stdin_open = False
                    if not stdin_is_tty:
                        pending += veof


def _read(fd: int) -> bytes | None:
    """Read from a non-blocking pty master: data, None (nothing yet), or b"" once the pty has hung up."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
    except OSError as err:
        if err.errno == errno.EIO:
            return b""
        raise


def _write_all(fd: int, data: bytes) -> bool:
    """Write everything, waiting if the fd happens to be non-blocking. False once the reader is gone."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [])
        except BrokenPipeError:
            return False
    return True
