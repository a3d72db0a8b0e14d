"""engine.console without containers: the SCM_RIGHTS hand-off (runc's wire format), the checks, window sizes,
pty allocation from a devpts, and the relay `engine run` uses (with pty pairs standing in for the
container's console and for the caller's terminal)."""

from __future__ import annotations

import array
import contextlib
import json
import os
import select
import signal
import socket
import stat
import termios
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import console, pty
from engine.console import ConsoleError, ConsoleRelay, ConsoleSocket


def open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


def same_file(a: int, b: int) -> bool:
    sa, sb = os.fstat(a), os.fstat(b)
    return (sa.st_dev, sa.st_ino, sa.st_rdev) == (sb.st_dev, sb.st_ino, sb.st_rdev)


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, int]]:
    master, slave = os.openpty()
    yield master, slave
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.fixture
def stream_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        yield a, b


# --- Sending and receiving the master -------------------------------------------------------------------


def test_send_receive_round_trip(pty_pair: tuple[int, int], stream_pair: tuple[socket.socket, socket.socket]) -> None:
    master, _ = pty_pair
    sender, receiver = stream_pair
    console.send_master(sender, master)
    fd, name = console.receive_fd(receiver)
    try:
        assert same_file(fd, master)
        assert name == console.MASTER_NAME == "/dev/pts/ptmx"
        assert not os.get_inheritable(fd), "a received master must not leak into the receiver's children"
    finally:
        os.close(fd)


def test_wire_format_is_runcs(pty_pair: tuple[int, int], stream_pair: tuple[socket.socket, socket.socket]) -> None:
    """What runc's SendRawFd puts on the wire, as runc's RecvFd, go-runc's recvFd and conmon's recvfd check it:
    the name without a NUL as data, exactly one SCM_RIGHTS control message with exactly one int."""
    master, _ = pty_pair
    sender, receiver = stream_pair
    console.send_master(sender, master)
    data, ancillary, flags, _ = receiver.recvmsg(4096, socket.CMSG_SPACE(4))
    assert data == b"/dev/pts/ptmx"
    assert flags & socket.MSG_CTRUNC == 0
    assert len(ancillary) == 1
    level, kind, payload = ancillary[0]
    assert (level, kind, len(payload)) == (socket.SOL_SOCKET, socket.SCM_RIGHTS, 4)
    fd = array.array("i", payload)[0]
    try:
        assert same_file(fd, master)
    finally:
        os.close(fd)


def test_receive_accepts_a_conmon_style_name_with_nul(
    pty_pair: tuple[int, int], stream_pair: tuple[socket.socket, socket.socket]
) -> None:
    master, _ = pty_pair
    sender, receiver = stream_pair
    sender.sendmsg([b"/dev/ptmx\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))])
    fd = console.receive_master(receiver)
    try:
        assert same_file(fd, master)
    finally:
        os.close(fd)


def test_receive_when_the_sender_closes_without_a_master(stream_pair: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = stream_pair
    sender.close()
    with pytest.raises(ConsoleError, match="connection closed, no pty master"):
        console.receive_master(receiver)


def test_receive_a_message_without_fd(stream_pair: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = stream_pair
    sender.send(b"/dev/pts/ptmx")
    with pytest.raises(ConsoleError, match="without a file descriptor"):
        console.receive_master(receiver)


def test_receive_two_fds_is_an_error_and_leaks_neither(
    pty_pair: tuple[int, int], stream_pair: tuple[socket.socket, socket.socket]
) -> None:
    master, slave = pty_pair
    sender, receiver = stream_pair
    before = open_fds()
    sender.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master, slave]))])
    with pytest.raises(ConsoleError, match="expected one file descriptor, got 2"):
        console.receive_master(receiver)
    assert open_fds() == before


def test_send_refuses_an_empty_or_overlong_name(
    pty_pair: tuple[int, int], stream_pair: tuple[socket.socket, socket.socket]
) -> None:
    sender, _ = stream_pair
    for name in ("", "x" * console.MAX_NAME_LEN):
        with pytest.raises(ConsoleError, match="name must be"):
            console.send_master(sender, pty_pair[0], name)


def test_connect_names_the_flag_and_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nobody-listens.sock"
    with pytest.raises(ConsoleError) as err:
        console.connect_console_socket(str(path))
    assert str(err.value) == f"--console-socket {path}: cannot connect: No such file or directory"
    assert "\n" not in str(err.value)


def test_console_socket_round_trip(pty_pair: tuple[int, int]) -> None:
    with ConsoleSocket.temporary() as listener:
        directory = Path(listener.path).parent
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        sock = console.connect_console_socket(listener.path)
        with sock:
            console.send_master(sock, pty_pair[0])
        fd = listener.receive_master(timeout=5)
        try:
            assert same_file(fd, pty_pair[0])
        finally:
            os.close(fd)
    assert not directory.exists()


def test_console_socket_times_out() -> None:
    with ConsoleSocket.temporary() as listener, pytest.raises(ConsoleError, match="no pty master arrived"):
        listener.receive_master(timeout=0.1)


# --- Checks ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terminal", "socket_path", "detach", "message"),
    [
        (True, None, True, console.CONSOLE_SOCKET_REQUIRED),  # engine create / run -d
        (True, "/s", True, None),
        (True, None, False, None),  # engine run in the foreground: it receives the master itself
        (True, "/s", False, console.CONSOLE_SOCKET_UNUSED),
        (False, "/s", True, console.CONSOLE_SOCKET_UNUSED),
        (False, None, True, None),
        (False, None, False, None),
    ],
)
def test_check_terminal(terminal: bool, socket_path: str | None, detach: bool, message: str | None) -> None:
    if message is None:
        console.check_terminal(terminal, socket_path, detach)
    else:
        with pytest.raises(ConsoleError) as err:
            console.check_terminal(terminal, socket_path, detach)
        assert str(err.value) == message


def test_messages_are_runcs_with_our_name() -> None:
    assert console.CONSOLE_SOCKET_REQUIRED == "cannot allocate tty if engine will detach without setting console socket"
    assert console.CONSOLE_SOCKET_UNUSED == "cannot use console socket if engine will not detach or allocate tty"


def test_terminal_requested(tmp_path: Path) -> None:
    def requested() -> bool:  # as `engine run` asks: the bytes it reads once, then process.terminal of them
        return console.terminal_in(console.read_bundle_config(str(tmp_path)))

    assert console.read_bundle_config(str(tmp_path)) is None
    assert requested() is False  # no config.json: create will say so
    (tmp_path / "config.json").write_text(json.dumps({"process": {"terminal": True}}))
    assert requested() is True
    (tmp_path / "config.json").write_text(json.dumps({"process": {"args": ["sh"]}}))
    assert requested() is False
    (tmp_path / "config.json").write_text("{not json")
    assert requested() is False


# --- Window size, pty allocation ------------------------------------------------------------------------


def test_window_size(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    console.set_window_size(master, 33, 101)
    assert console.window_size(slave) == (33, 101)  # one tty: set on the master, seen on the slave
    with pytest.raises(ConsoleError, match=r"process.consoleSize.width: 65536 is out of range"):
        console.set_window_size(master, 10, 65536)


def test_open_pty_from_a_devpts(tmp_path: Path) -> None:
    if not os.access("/dev/pts/ptmx", os.R_OK | os.W_OK):
        pytest.skip("/dev/pts/ptmx is not usable here (ptmxmode=000 and not root)")
    master, slave, path = pty.open_pty("/dev/pts")
    try:
        number = pty.pty_number(master)
        assert path == f"/dev/pts/{number}"
        assert os.fstat(slave).st_rdev == os.makedev(pty.PTY_SLAVE_MAJOR, number)
        assert os.ttyname(slave) == path
        assert not os.get_inheritable(master) and not os.get_inheritable(slave)
        os.write(slave, b"ping\n")
        assert os.read(master, 100) == b"ping\r\n"
    finally:
        os.close(master)
        os.close(slave)


def test_open_pty_refuses_what_is_not_a_devpts_ptmx(tmp_path: Path) -> None:
    (tmp_path / "ptmx").write_text("")
    with pytest.raises(ConsoleError, match="not on a devpts mount"):
        pty.open_pty(str(tmp_path))
    (tmp_path / "ptmx").unlink()
    os.symlink("/dev/pts/ptmx", tmp_path / "ptmx")  # a symlink, even to the real thing, is not followed
    with pytest.raises(ConsoleError, match="not on a devpts mount"):
        pty.open_pty(str(tmp_path))


def test_open_pty_without_devpts_says_what_to_mount(tmp_path: Path) -> None:
    with pytest.raises(ConsoleError, match=r"No such file or directory \(does config.json mount devpts"):
        pty.open_pty(str(tmp_path / "pts"))


def test_setup_console_needs_a_socket() -> None:
    with pytest.raises(ConsoleError, match=console.CONSOLE_SOCKET_REQUIRED):
        pty.setup_console(None, None)


# --- The relay ------------------------------------------------------------------------------------------


def read_until(fd: int, needle: bytes, timeout: float = 5) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"{needle!r} did not arrive; got {data!r}")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise AssertionError(f"EOF before {needle!r}; got {data!r}")
        data += chunk
    return data


def test_relay_copies_both_ways_and_ends_at_hangup(pty_pair: tuple[int, int]) -> None:
    """stdin and stdout are pipes (no terminal on the caller's side): plain copying, no raw mode."""
    master, slave = pty_pair
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    relay = ConsoleRelay(os.dup(master), stdin=in_r, stdout=out_w).start()
    try:
        os.write(slave, b"from the container\n")
        assert read_until(out_r, b"container\r\n").endswith(b"from the container\r\n")  # the pty's onlcr
        os.write(in_w, b"typed\n")
        assert read_until(slave, b"typed\n") == b"typed\n"
        os.close(in_w)  # stdin's EOF becomes the terminal's EOF (^D at the start of a line)
        assert select.select([slave], [], [], 5)[0] and os.read(slave, 100) == b""
        os.write(slave, b"last words\n")
        os.close(slave)  # the container is gone: the master hangs up once its output is read
        assert relay.wait(5)
        assert relay.error is None
        assert read_until(out_r, b"last words\r\n")
    finally:
        relay.close()
        for fd in (in_r, out_r, out_w):
            os.close(fd)


def test_relay_survives_a_closed_stdout(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    out_r, out_w = os.pipe()
    os.close(out_r)  # `engine run ... | head -1` after head has gone
    devnull = os.open(os.devnull, os.O_RDONLY)
    relay = ConsoleRelay(os.dup(master), stdin=devnull, stdout=out_w).start()
    try:
        os.write(slave, b"nobody reads this\n")
        time.sleep(0.1)
        os.close(slave)
        assert relay.wait(5)
        assert relay.error is None
    finally:
        relay.close()
        os.close(out_w)
        os.close(devnull)


def test_relay_raw_mode_window_size_and_restore(pty_pair: tuple[int, int]) -> None:
    """The caller's terminal is a second pty: raw while relaying, restored after, its size followed."""
    master, slave = pty_pair
    caller_master, caller = os.openpty()
    try:
        console.set_window_size(caller_master, 41, 132)
        before = termios.tcgetattr(caller)
        previous_winch = signal.getsignal(signal.SIGWINCH)
        relay = ConsoleRelay(os.dup(master), stdin=caller, stdout=caller).start()
        try:
            raw = termios.tcgetattr(caller)
            assert raw[3] & (termios.ICANON | termios.ECHO | termios.ISIG) == 0
            assert console.window_size(slave) == (41, 132), "the caller's size is copied at start"
            console.set_window_size(caller_master, 50, 160)
            os.kill(os.getpid(), signal.SIGWINCH)  # what the kernel sends the caller's foreground group
            deadline = time.monotonic() + 5
            while console.window_size(slave) != (50, 160) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert console.window_size(slave) == (50, 160)
            tty.setraw(slave)  # so the container's side shows the byte instead of turning it into SIGINT
            os.write(caller_master, b"\x03")  # ^C: raw on the caller's side, so a byte, not a signal to us
            assert read_until(slave, b"\x03") == b"\x03"
        finally:
            os.close(slave)
            relay.close()
        assert termios.tcgetattr(caller) == before
        assert signal.getsignal(signal.SIGWINCH) == previous_winch
    finally:
        os.close(caller_master)
        os.close(caller)
