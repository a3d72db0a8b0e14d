"""A child that fails while a packet we sent it is unread: its error message still reaches create.

The kernel reports ECONNRESET once, before the packets the closed peer queued (net/core/datagram.c checks the
socket error before the queue); create printed a traceback instead of the init's one-line error (seen in
test_rootless: an init refused its oomScoreAdj while create's next message was still in its queue).
"""

from __future__ import annotations

import os
import socket

import pytest

from engine import channel


def _peer_fails_with_our_packet_unread(message: bytes) -> socket.socket:
    ours, theirs = channel.pair()
    ours.send(b'{"type": "go"}')  # never read by the peer
    theirs.send(message)
    theirs.close()
    return ours


def test_the_error_behind_a_reset_is_read() -> None:
    sock = _peer_fails_with_our_packet_unread(b'{"type": "error", "message": "oomScoreAdj: Permission denied"}')
    with pytest.raises(channel.ChannelClosed, match=r"^oomScoreAdj: Permission denied$"):
        channel.expect(sock, "userns")


def test_a_reset_without_a_message_is_the_init_dying() -> None:
    ours, theirs = channel.pair()
    ours.send(b'{"type": "go"}')
    theirs.close()
    with pytest.raises(channel.ChannelClosed, match="died"):
        channel.recv(ours)


def test_a_message_with_an_fd_behind_a_reset_is_read() -> None:
    ours, theirs = channel.pair()
    ours.send(b'{"type": "go"}')
    r, w = os.pipe()
    channel.send_fd(theirs, {"type": "console"}, r)
    os.close(r)
    theirs.close()
    message, fd = channel.expect_fd(ours, "console")
    try:
        assert message == {"type": "console"}
        os.write(w, b"x")
        assert os.read(fd, 1) == b"x"
    finally:
        os.close(fd)
        os.close(w)
