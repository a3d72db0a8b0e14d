"""The create-time channel between `engine create` and the container's init: JSON messages on a
SOCK_SEQPACKET socketpair (one message per packet, and EOF when the other side dies).

Messages, in order:
  init -> engine  {"type": "pid", "pid": N}          the init's host pid (sent by the intermediate child)
  init -> engine  {"type": "hooks"}                  mounts are done: run prestart + createRuntime hooks
  engine -> init  {"type": "continue", "state": ..}  hooks passed; the state is for createContainer hooks
  init -> engine  {"type": "console"} + one fd       process.terminal: the pty master (SCM_RIGHTS), which
                                                     engine forwards to --console-socket (engine.console)
  init -> engine  {"type": "ready"}                  set up, about to wait on the exec fifo
  engine -> init  {"type": "go"}                     state.json says created: wait for `start`
  either way      {"type": "error", "message": ".."} the sender gives up
"""

from __future__ import annotations

import array
import json
import os
import socket
from collections.abc import Callable
from typing import Any, TypeVar

MAX_MESSAGE = 1 << 20


class ChannelClosed(Exception):
    pass


T = TypeVar("T")


def pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.send(json.dumps(message).encode())


def send_fd(sock: socket.socket, message: dict[str, Any], fd: int) -> None:
    """A message with one file descriptor riding along (SCM_RIGHTS); the receiver takes it with expect_fd."""
    sock.sendmsg([json.dumps(message).encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])


def expect_fd(sock: socket.socket, kind: str) -> tuple[dict[str, Any], int]:
    """The next message, which must be `kind` and carry exactly one fd (close-on-exec here; the caller owns
    it). Only for a message nothing can overtake: no `early` list. A plain recv() of a message that carries
    fds makes the kernel close them, so none leaks either way."""
    fds = array.array("i")
    data, ancillary, flags, _ = receive(
        sock.recvmsg, MAX_MESSAGE, socket.CMSG_SPACE(2 * fds.itemsize), socket.MSG_CMSG_CLOEXEC
    )
    for level, cmsg_type, cdata in ancillary:
        if level == socket.SOL_SOCKET and cmsg_type == socket.SCM_RIGHTS:
            fds.frombytes(cdata[: len(cdata) - len(cdata) % fds.itemsize])
    try:
        if not data:
            raise ChannelClosed("the container's init died during setup")
        message = json.loads(data)
        if message.get("type") == "error":
            raise ChannelClosed(message.get("message", "unknown error"))
        if message.get("type") != kind or len(fds) != 1 or flags & socket.MSG_CTRUNC:
            raise ChannelClosed(
                f"expected {kind!r} with one file descriptor on the create channel, "
                f"got {message.get('type')!r} with {len(fds)}"
            )
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return message, fds[0]


def receive(call: Callable[..., T], *args: Any) -> T:
    """sock.recv/recvmsg on a SOCK_SEQPACKET channel, reading past a reset. A peer that exits while a packet
    we sent it is still unread makes the kernel report ECONNRESET once, BEFORE the packets the peer queued
    for us (its error message among them): the error is consumed by that report, so the next call reads
    them, then EOF."""
    try:
        return call(*args)
    except ConnectionResetError:
        return call(*args)


def recv(sock: socket.socket) -> dict[str, Any]:
    data = receive(sock.recv, MAX_MESSAGE)
    if not data:
        raise ChannelClosed("the container's init died during setup")
    return json.loads(data)


def expect(sock: socket.socket, kind: str, early: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The next message of `kind`. The intermediate child and the init share the channel, so the init's
    "hooks" can overtake the intermediate's "pid": with `early`, other messages are kept there for later."""
    if early:
        for message in early:
            if message.get("type") == kind:
                early.remove(message)
                return message
    while True:
        message = recv(sock)
        if message.get("type") == "error":
            raise ChannelClosed(message.get("message", "unknown error"))
        if message.get("type") == kind:
            return message
        if early is None:
            raise ChannelClosed(f"expected {kind!r} on the create channel, got {message.get('type')!r}")
        early.append(message)
