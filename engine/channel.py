"""The protocol between engine's processes while a container is made or joined: typed messages, one per packet,
on a SOCK_SEQPACKET socketpair per child, so that no message of one child can overtake another's.

`engine create` (engine/create.py) and its two children (engine/init.py):

    engine create                      intermediate child                     container init
      │ fork ───────────────────────────>│
      │ put it in the cgroups            │
      │── InCgroup ─────────────────────>│ setns(linux.namespaces paths)
      │                                  │ unshare(user)              ┐ only with a new
      │<───────────────── UserNsMade ────│                            │ user namespace
      │ write uid_map, gid_map           │                            │
      │── IdsMapped ────────────────────>│ become its root            ┘
      │                                  │ unshare(the others), time offsets
      │                                  │ fork ───────────────────────────────>│
      │<─────────────── InitForked(pid) ─│                                      │
      │ reap it                         exit                                    │ mounts, /dev
      │<───────────────────────────────────────────────────────── MountsDone ───│ (runc: procHooks)
      │ prestart, createRuntime hooks                                           │
      │── HooksDone(state) ────────────────────────────────────────────────────>│ (runc: procHooksDone)
      │                                                                         │ createContainer hooks, masks,
      │                                                                         │ pivot_root, the pty
      │<──────────────────────────────────────────── ConsoleMaster + its fd ───│ only with process.terminal
      │ send it to --console-socket                                             │ sysctls, cwd, rlimits
      │<────────────────────────────────────────────────────────────── Ready ───│ (runc: procReady)
      │ --pid-file; state.json says "created"                                   │
      │── Created ─────────────────────────────────────────────────────────────>│ (runc: procRun)
      │                                                                        closes its end; waits on the
      │                                                                        exec fifo for `engine start`

`engine exec` (engine/exec.py) and its two children:

    engine exec                        joiner                                 process
      │ fork ───────────────────────────>│
      │ execCPUAffinity.initial, cgroups │
      │── InCgroup ─────────────────────>│ setns(the init's namespaces)
      │                                  │ fork ───────────────────────────────>│
      │<──────────── ProcessForked(pid) ─│                                      │
      │ reap it                         exit                                    │
      │── Adopted(pid) ────────────────────────────────────────────────────────>│ our child now: finish, execve
      │<──────────────────────────────────────────── end of the channel ────────│ (its end is close-on-exec)

Each child talks on a channel of its own: create reads the init's channel only once the intermediate's has
given the init's pid, so the order above holds whatever the scheduler does. Instead of any message it owes, a
side may send Failed(message) and give up: the receiver raises PeerFailed with that one line. A channel that
ends where a message was due raises PeerGone, naming who went away. Anything else is a ProtocolError (a bug).
"""

from __future__ import annotations

# _socket, not socket (enum, selectors: ~2 ms) and state.jsonio, not json (re: ~3 ms): create, the init and
# exec load this module, and the init cannot import anything later (after pivot_root).
import _socket
import os

from engine.errors import EngineError, one_line, suppress
from engine.linux import scm
from engine.record import field_names, record
from state import jsonio

if os.environ.get("ENGINE_DEBUG_INIT"):  # a debugging aid: the error's traceback goes into Failed
    import traceback

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar, TypeVar

    M = TypeVar("M", bound="Message")
    T = TypeVar("T")

MAX_MESSAGE = 1 << 20


class Message:
    """A message of the protocol: its class name is its type on the wire, its fields the rest of the JSON."""

    registry: ClassVar[dict[str, type[Message]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        Message.registry[cls.__name__] = cls


# --- create and its intermediate child -------------------------------------------------------------------


@record(frozen=True)
class InCgroup(Message):
    """create/exec -> first child: you are in the container's cgroups; enter the namespaces. Answer: UserNsMade
    (create, with a new user namespace), InitForked (create) or ProcessForked (exec)."""


@record(frozen=True)
class UserNsMade(Message):
    """intermediate -> create: I unshared the user namespace and wait for its id maps. Answer: IdsMapped."""


@record(frozen=True)
class IdsMapped(Message):
    """create -> intermediate: uid_map and gid_map are written. Answer: InitForked."""


@record(frozen=True)
class InitForked(Message):
    """intermediate -> create: the init runs, pid as the host sees it; the intermediate exits next. No answer:
    create reads the init's own channel from here."""

    pid: int


# --- create and the container's init ---------------------------------------------------------------------


@record(frozen=True)
class MountsDone(Message):
    """init -> create: the mounts exist; run prestart and createRuntime hooks. Answer: HooksDone."""


@record(frozen=True)
class HooksDone(Message):
    """create -> init: the hooks passed; `state` is the container's state, for the createContainer hooks.
    Answer: ConsoleMaster (only with process.terminal), then Ready."""

    state: dict[str, Any]


@record(frozen=True)
class Ready(Message):
    """init -> create: set up; about to wait on the exec fifo. Answer: Created."""


@record(frozen=True)
class ConsoleMaster(Message):
    """init -> create, with one fd (SCM_RIGHTS): the pty master of process.terminal, allocated in the container's
    devpts after pivot_root. create holds the connection to --console-socket (a host path the init, maybe a user
    namespace's root, may not reach) and forwards it there. Only with process.terminal; no answer: Ready follows."""


@record(frozen=True)
class Created(Message):
    """create -> init: state.json says "created"; wait for `engine start`. No answer: the init closes its end."""


# --- exec and its children ---------------------------------------------------------------------------------


@record(frozen=True)
class ProcessForked(Message):
    """joiner -> exec: the process runs in the container's namespaces, pid as the host sees it; the joiner exits
    next. No answer: exec talks to the process on its own channel from here."""

    pid: int


@record(frozen=True)
class Adopted(Message):
    """exec -> process: the joiner is reaped, so we are your parent; `pid` is yours as the host sees it (for a
    seccomp agent). No answer: the channel ends when the process execs (Failed if it cannot)."""

    pid: int


# --- either way --------------------------------------------------------------------------------------------


@record(frozen=True)
class Failed(Message):
    """either side -> the other, instead of the message it owes: the sender gives up, `message` says why in one
    line. No answer."""

    message: str


def encode(message: Message) -> bytes:
    body = {name: getattr(message, name) for name in field_names(message)}
    return jsonio.dumps({"type": type(message).__name__, **body}).encode()


def decode(data: bytes) -> Message:
    try:
        raw = jsonio.loads(data)
        cls = Message.registry[raw.pop("type")]
        return cls(**raw)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ProtocolError(f"a message engine cannot read: {data[:200]!r} ({err})") from None


def failure_frame(head: str) -> tuple[bytes, bytes]:
    """What goes before and after a text appended to `head` so that the bytes are a Failed message: the exec
    trampoline (engine/linux/trampoline.py) writes its errno digits between the two."""
    text = encode(Failed(head + "\0"))
    before, _, after = text.partition(b"\\u0000")
    return before, after


# --- errors ----------------------------------------------------------------------------------------------


class ChannelError(EngineError):
    """The protocol did not go as drawn above; str() is one line."""


class PeerGone(ChannelError):
    """The channel ended where a message was due: the other side exited (or died) without a word."""

    def __init__(self, peer: str) -> None:
        super().__init__(f"{peer} exited unexpectedly")
        self.peer = peer


class PeerFailed(ChannelError):
    """The other side sent Failed: str() is its message."""


class ProtocolError(ChannelError):
    """A message that is not the one the protocol has next: a bug in engine."""


# --- the channel -----------------------------------------------------------------------------------------


class Channel:
    """One end of a socketpair between two of engine's processes. `peer` names the other side in errors."""

    def __init__(self, sock: _socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, message: Message) -> None:
        try:
            self.sock.send(encode(message))
        except (BrokenPipeError, ConnectionResetError):
            # The other side is gone, and what it queued for us before it went says why (its Failed, read past
            # the reset as receive does): a one-line ChannelError, never an OSError the CLI could mistake for
            # its own stdout's broken pipe.
            self._expect(_past_a_reset(self.sock.recv, MAX_MESSAGE), Failed)
            raise PeerGone(self.peer) from None

    def receive(self, kind: type[M]) -> M:
        """The next message, which must be a `kind`."""
        return self._expect(_past_a_reset(self.sock.recv, MAX_MESSAGE), kind)

    def _expect(self, data: bytes, kind: type[M]) -> M:
        if not data:
            raise PeerGone(self.peer)
        message = decode(data)
        if isinstance(message, Failed):
            raise PeerFailed(message.message)
        if not isinstance(message, kind):
            raise ProtocolError(f"expected {kind.__name__} from {self.peer}, got {type(message).__name__}")
        return message

    def send_with_fd(self, message: Message, fd: int) -> None:
        """`message` with one file descriptor riding along (SCM_RIGHTS); the receiver takes it with receive_with_fd."""
        self.sock.sendmsg([encode(message)], scm.rights(fd))

    def receive_with_fd(self, kind: type[M]) -> tuple[M, int]:
        """The next message, which must be a `kind` carrying exactly one fd (close-on-exec here; the caller owns
        it). Any fd that came with anything else is closed, so none leaks either way."""
        data, ancillary, flags, _ = _past_a_reset(
            self.sock.recvmsg, MAX_MESSAGE, scm.space(2), _socket.MSG_CMSG_CLOEXEC
        )
        fds = scm.received_fds(ancillary)
        try:
            message = self._expect(data, kind)
            if len(fds) != 1 or flags & _socket.MSG_CTRUNC:
                raise ProtocolError(
                    f"expected {kind.__name__} with one file descriptor from {self.peer}, got {len(fds)}"
                )
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return message, fds[0]

    def wait_for_end(self) -> None:
        """The channel ends: the other side exec'd (its end is close-on-exec), or sent Failed (PeerFailed)."""
        data = _past_a_reset(self.sock.recv, MAX_MESSAGE)
        if data:
            message = decode(data)
            if isinstance(message, Failed):
                raise PeerFailed(message.message)
            raise ProtocolError(f"expected the end of the channel from {self.peer}, got {type(message).__name__}")

    def fail(self, err: BaseException) -> None:
        """Best effort, from a child about to exit: tell the other side why, in one line."""
        message = one_line(err)
        if os.environ.get("ENGINE_DEBUG_INIT"):
            message += " | " + " ".join(traceback.format_exception(err)).replace("\n", " ")
        with suppress(OSError, ChannelError):  # nobody left to tell
            self.send(Failed(message))


def _past_a_reset(call: Callable[..., T], *args: Any) -> T:
    """sock.recv/recvmsg, reading past a reset. A peer that exits while a packet we sent it is still unread makes
    the kernel report ECONNRESET once, BEFORE the packets the peer queued for us (its Failed among them): the
    error is consumed by that report, so the next call reads them, then the end of the channel."""
    try:
        return call(*args)
    except ConnectionResetError:
        return call(*args)


def pair(parent: str, child: str) -> tuple[Channel, Channel]:
    """(the parent's end, which names the child in errors; the child's end, which names the parent)."""
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    return Channel(a, child), Channel(b, parent)
