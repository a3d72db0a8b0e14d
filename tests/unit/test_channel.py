"""engine/channel.py: the typed protocol between engine's processes, without forking: both ends in this process."""

from __future__ import annotations

import os

import pytest

from engine import channel
from engine.errors import EngineError
from engine.record import field_names


def every_message() -> list[channel.Message]:
    samples = {"pid": 4242, "state": {"ociVersion": "1.3.0", "id": "c1", "status": "creating"}, "message": "m"}
    out = []
    for cls in channel.Message.registry.values():
        out.append(cls(**{name: samples[name] for name in field_names(cls)}))
    return out


@pytest.mark.parametrize("message", every_message(), ids=lambda m: type(m).__name__)
def test_every_message_crosses_as_itself(message: channel.Message) -> None:
    parent, child = channel.pair("engine create", "the container's init")
    with parent, child:
        parent.send(message)
        if isinstance(message, channel.Failed):
            with pytest.raises(channel.PeerFailed, match=r"^m$"):
                child.receive(channel.Ready)
        else:
            assert child.receive(type(message)) == message


def test_the_protocol_names_each_message_once_with_its_direction() -> None:
    names = set(channel.Message.registry)
    assert names == {
        "InCgroup",
        "UserNsMade",
        "IdsMapped",
        "InitForked",
        "MountsDone",
        "HooksDone",
        "ConsoleMaster",
        "Ready",
        "Created",
        "ProcessForked",
        "Adopted",
        "Failed",
    }
    for name, cls in channel.Message.registry.items():
        assert "->" in (cls.__doc__ or ""), f"{name}: its docstring says who sends it to whom"
        assert name in (channel.__doc__ or "") or name == "Failed", f"{name} is missing from the drawing"


def test_the_end_of_a_channel_names_who_went_away() -> None:
    parent, child = channel.pair("engine exec", "engine exec's joining child")
    child.close()
    with parent, pytest.raises(channel.PeerGone, match=r"^engine exec's joining child exited unexpectedly$"):
        parent.receive(channel.ProcessForked)


def test_another_message_than_the_one_due_is_a_protocol_error() -> None:
    parent, child = channel.pair("engine create", "the intermediate child")
    with parent, child:
        child.send(channel.MountsDone())
        with pytest.raises(channel.ProtocolError, match="expected InitForked from the intermediate child, got Mounts"):
            parent.receive(channel.InitForked)


def test_errors_are_engine_errors_and_one_line() -> None:
    for cls in (channel.PeerGone, channel.PeerFailed, channel.ProtocolError):
        assert issubclass(cls, channel.ChannelError) and issubclass(cls, EngineError)


def test_garbage_is_a_protocol_error_not_a_traceback() -> None:
    parent, child = channel.pair("engine create", "the container's init")
    with parent, child:
        for data in (b"{", b'{"type": "Nope"}', b'{"type": "InitForked"}', b"[1]"):
            child.sock.send(data)
            with pytest.raises(channel.ProtocolError):
                parent.receive(channel.InitForked)


def test_fail_sends_one_line_for_an_os_error() -> None:
    parent, child = channel.pair("engine create", "the container's init")
    with parent, child:
        child.fail(FileNotFoundError(2, "No such file or directory", "/etc/x"))
        with pytest.raises(channel.PeerFailed, match=r"^No such file or directory: /etc/x$"):
            parent.receive(channel.Ready)


def test_wait_for_end_returns_at_the_end_and_raises_on_failed() -> None:
    parent, child = channel.pair("engine exec", "the process")
    child.close()
    with parent:
        parent.wait_for_end()
    parent, child = channel.pair("engine exec", "the process")
    with parent, child:
        child.send(channel.Failed("process.cwd: /x: not a directory"))
        with pytest.raises(channel.PeerFailed, match=r"process.cwd"):
            parent.wait_for_end()


def test_the_trampolines_frame_around_errno_digits_is_a_failed_message() -> None:
    """engine/linux/trampoline.py writes prefix + three digits + suffix in one writev: that must decode."""
    before, after = channel.failure_frame('exec /bin/"odd" path: errno=')
    parent, child = channel.pair("engine exec", "the process")
    with parent, child:
        os.write(child.fileno(), before + b"002" + after)
        with pytest.raises(channel.PeerFailed) as caught:
            parent.wait_for_end()
    assert str(caught.value) == 'exec /bin/"odd" path: errno=002'


def test_channels_are_close_on_exec() -> None:
    parent, child = channel.pair("a", "b")
    with parent, child:
        assert not os.get_inheritable(parent.fileno()) and not os.get_inheritable(child.fileno())


def test_a_send_to_a_side_that_failed_and_left_raises_its_message() -> None:
    # The intermediate child may fail (and exit) before `engine create` sends InCgroup: create must report the
    # child's one line, not a BrokenPipeError (which the CLI treats as its own stdout going away: exit 0).
    parent, child = channel.pair("engine create", "the intermediate child")
    child.fail(OSError(1, "unshare: Operation not permitted"))
    child.close()
    with parent, pytest.raises(channel.PeerFailed, match="unshare: Operation not permitted"):
        parent.send(channel.InCgroup())


def test_a_send_to_a_side_that_left_silently_names_it() -> None:
    parent, child = channel.pair("engine create", "the intermediate child")
    child.close()
    with parent, pytest.raises(channel.PeerGone, match="the intermediate child exited unexpectedly"):
        parent.send(channel.InCgroup())
    lone, other = channel.pair("a", "b")
    other.close()
    lone.fail(RuntimeError("nobody listens"))  # fail() has nobody left to tell: no error
    lone.close()
