"""The pty master's way out with process.terminal: the init passes it back over the create channel (a message with
one fd, engine.channel.send_fd/expect_fd) and `engine create` forwards it to --console-socket in runc's format
(engine.console.forward_master), so the init never needs to reach the socket's path."""

from __future__ import annotations

import array
import os
import socket
from collections.abc import Iterator

import pytest

from engine import channel, console
from engine.console import ConsoleError


def open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    init, engine = channel.pair()
    with init, engine:
        yield init, engine


def test_a_message_with_its_fd(pair: tuple[socket.socket, socket.socket]) -> None:
    init, engine = pair
    master, slave = os.openpty()
    try:
        channel.send_fd(init, {"type": "console"}, master)
        message, fd = channel.expect_fd(engine, "console")
        try:
            assert message == {"type": "console"}
            assert os.get_inheritable(fd) is False  # MSG_CMSG_CLOEXEC: no child of engine create inherits it
            assert (os.fstat(fd).st_ino, os.fstat(fd).st_rdev) == (os.fstat(master).st_ino, os.fstat(master).st_rdev)
        finally:
            os.close(fd)
    finally:
        os.close(master)
        os.close(slave)


def test_an_error_from_the_init_is_raised(pair: tuple[socket.socket, socket.socket]) -> None:
    init, engine = pair
    channel.send(init, {"type": "error", "message": "process.terminal: /dev/pts/ptmx: Operation not permitted"})
    with pytest.raises(channel.ChannelClosed, match="Operation not permitted"):
        channel.expect_fd(engine, "console")


def test_the_init_dying_is_raised(pair: tuple[socket.socket, socket.socket]) -> None:
    init, engine = pair
    init.close()
    with pytest.raises(channel.ChannelClosed, match="died"):
        channel.expect_fd(engine, "console")


@pytest.mark.parametrize("fds", [0, 2], ids=["no-fd", "two-fds"])
def test_anything_but_one_fd_is_refused_and_nothing_leaks(pair: tuple[socket.socket, socket.socket], fds: int) -> None:
    init, engine = pair
    r, w = os.pipe()
    try:
        before = open_fds()
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r, w][:fds]))] if fds else []
        init.sendmsg([b'{"type": "console"}'], rights)
        with pytest.raises(channel.ChannelClosed, match=f"expected 'console' with one file descriptor.* with {fds}"):
            channel.expect_fd(engine, "console")
        assert open_fds() == before
    finally:
        os.close(r)
        os.close(w)


def test_another_message_is_refused_and_its_fd_closed(pair: tuple[socket.socket, socket.socket]) -> None:
    init, engine = pair
    r, w = os.pipe()
    try:
        before = open_fds()
        channel.send_fd(init, {"type": "ready"}, r)
        with pytest.raises(channel.ChannelClosed, match="got 'ready'"):
            channel.expect_fd(engine, "console")
        assert open_fds() == before
    finally:
        os.close(r)
        os.close(w)


def test_forward_master_sends_runcs_message() -> None:
    master, slave = os.openpty()
    sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with sender, receiver:
        try:
            console.forward_master(sender, master)
            fd, name = console.receive_fd(receiver)
            os.close(fd)
            assert name == console.MASTER_NAME
        finally:
            os.close(master)
            os.close(slave)


@pytest.mark.parametrize("what", ["slave", "pipe"])
def test_forward_master_refuses_what_is_not_a_pty_master(what: str) -> None:
    master, slave = os.openpty()
    r, w = os.pipe()
    sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with sender, receiver:
        try:
            with pytest.raises(ConsoleError, match="not a pty master"):
                console.forward_master(sender, slave if what == "slave" else r)
            receiver.setblocking(False)
            with pytest.raises(BlockingIOError):
                receiver.recv(1)  # nothing was sent
        finally:
            for fd in (master, slave, r, w):
                os.close(fd)
