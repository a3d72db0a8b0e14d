"""A child that fails while a packet we sent it is unread: its error message still reaches create (or exec).

The kernel reports ECONNRESET once, before the packets the closed peer queued (net/core/datagram.c checks the
socket error before the queue); create printed a traceback instead of the init's one-line error (seen in
test_rootless: an init refused its oomScoreAdj while create's next message was still in its queue).
"""

from __future__ import annotations

import os

import pytest

from engine import channel


def _peer_fails_with_our_packet_unread(message: channel.Message | None) -> channel.Channel:
    ours, theirs = channel.pair("engine create", "the container's init")
    ours.send(channel.Created())  # never read by the peer
    if message is not None:
        theirs.send(message)
    theirs.close()
    return ours


def test_the_error_behind_a_reset_is_read() -> None:
    ours = _peer_fails_with_our_packet_unread(channel.Failed("oomScoreAdj: Permission denied"))
    with ours, pytest.raises(channel.PeerFailed, match=r"^oomScoreAdj: Permission denied$"):
        ours.receive(channel.UserNsMade)


def test_a_reset_without_a_message_is_the_peer_gone() -> None:
    ours = _peer_fails_with_our_packet_unread(None)
    with ours, pytest.raises(channel.PeerGone, match=r"^the container's init exited unexpectedly$"):
        ours.receive(channel.Ready)


def test_the_end_behind_a_reset_is_the_end() -> None:
    with _peer_fails_with_our_packet_unread(None) as ours:
        ours.wait_for_end()  # no ConnectionResetError: the process exec'd


def test_a_message_with_an_fd_behind_a_reset_is_read() -> None:
    ours, theirs = channel.pair("engine create", "the container's init")
    ours.send(channel.HooksDone({}))
    r, w = os.pipe()
    theirs.send_with_fd(channel.ConsoleMaster(), r)
    os.close(r)
    theirs.close()
    with ours:
        message, fd = ours.receive_with_fd(channel.ConsoleMaster)
    try:
        assert message == channel.ConsoleMaster()
        os.write(w, b"x")
        assert os.read(fd, 1) == b"x"
    finally:
        os.close(fd)
        os.close(w)
