"""The pty master's way out with process.terminal: the init passes it back over the create channel (a message with
one fd: engine.channel.ConsoleMaster, Channel.send_with_fd/receive_with_fd) and `engine create` forwards it to
--console-socket in runc's format
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
def pair() -> Iterator[tuple[channel.Channel, channel.Channel]]:
    engine, init = channel.pair("engine create", "the container's init")
    with init, engine:
        yield init, engine


def test_a_message_with_its_fd(pair: tuple[channel.Channel, channel.Channel]) -> None:
    init, engine = pair
    master, slave = os.openpty()
    try:
        init.send_with_fd(channel.ConsoleMaster(), master)
        message, fd = engine.receive_with_fd(channel.ConsoleMaster)
        try:
            assert message == channel.ConsoleMaster()
            assert os.get_inheritable(fd) is False  # MSG_CMSG_CLOEXEC: no child of engine create inherits it
            assert (os.fstat(fd).st_ino, os.fstat(fd).st_rdev) == (os.fstat(master).st_ino, os.fstat(master).st_rdev)
        finally:
            os.close(fd)
    finally:
        os.close(master)
        os.close(slave)


def test_an_error_from_the_init_is_raised(pair: tuple[channel.Channel, channel.Channel]) -> None:
    init, engine = pair
    init.send(channel.Failed("process.terminal: /dev/pts/ptmx: Operation not permitted"))
    with pytest.raises(channel.PeerFailed, match=r"^process.terminal: /dev/pts/ptmx: Operation not permitted$"):
        engine.receive_with_fd(channel.ConsoleMaster)


def test_the_init_dying_is_raised(pair: tuple[channel.Channel, channel.Channel]) -> None:
    init, engine = pair
    init.close()
    with pytest.raises(channel.PeerGone, match=r"^the container's init exited unexpectedly$"):
        engine.receive_with_fd(channel.ConsoleMaster)


@pytest.mark.parametrize("fds", [0, 2], ids=["no-fd", "two-fds"])
def test_anything_but_one_fd_is_refused_and_nothing_leaks(
    pair: tuple[channel.Channel, channel.Channel], fds: int
) -> None:
    init, engine = pair
    r, w = os.pipe()
    try:
        before = open_fds()
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r, w][:fds]))] if fds else []
        init.sock.sendmsg([channel.encode(channel.ConsoleMaster())], rights)
        with pytest.raises(
            channel.ProtocolError, match=rf"expected ConsoleMaster with one file descriptor.* got {fds}$"
        ):
            engine.receive_with_fd(channel.ConsoleMaster)
        assert open_fds() == before
    finally:
        os.close(r)
        os.close(w)


def test_another_message_is_refused_and_its_fd_closed(pair: tuple[channel.Channel, channel.Channel]) -> None:
    init, engine = pair
    r, w = os.pipe()
    try:
        before = open_fds()
        init.send_with_fd(channel.Ready(), r)
        with pytest.raises(channel.ProtocolError, match=r"got Ready$"):
            engine.receive_with_fd(channel.ConsoleMaster)
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
