"""engine kill [--all] <id> [signal]   (runtime.md "Kill"; default SIGTERM as runc)"""

from engine.cli import Context
from engine.container import signal_all, signal_init
from engine.errors import InvalidState
from engine.signals import parse_signal
from state.rules import STOPPED, require_killable
from state.store import Store

TYPE_CHECKING = False  # argparse only for the annotation: the hot path parses argv by hand
if TYPE_CHECKING:
    import argparse

    from state.record import ContainerRecord


def run(ctx: Context, args: "argparse.Namespace") -> int:
    sig = parse_signal(args.signal)
    store = Store(ctx.root)
    if not args.all:
        # No lock, as `engine state` reads without one: state.json is replaced atomically, and the signal goes
        # through a pidfd proven to be the init's (its start time), so whatever start, delete or the monitor do
        # meanwhile, it reaches the container's init or nothing. (The lock, and fcntl to take it, would be a
        # fifth of what kill costs above the interpreter's start.)
        record = store.load(args.container_id)
        require_killable(args.container_id, record.observed_status())
        if not signal_init(record, sig):
            raise InvalidState(f"cannot kill container {args.container_id!r}: container not running (it is stopped)")
        ctx.log.debug(f"kill {args.container_id}: sent signal {sig} to the init")
        return 0
    # --all freezes and thaws the container's cgroups, which must not interleave with pause, resume or delete.
    with store.locked(args.container_id, shared=True) as dir_fd:
        record = store.load(args.container_id, dir_fd)
        status = record.observed_status()
        if status == STOPPED:
            signal_leftovers(record, sig)
            return 0
        require_killable(args.container_id, status)
        signal_all(record, sig, warn=ctx.log.warning)
        ctx.log.debug(f"kill {args.container_id}: sent signal {sig} to every process")
    return 0


def signal_leftovers(record: "ContainerRecord", sig: int) -> None:
    """`kill --all` of a stopped container, as runc: signal what is still in its cgroup, and succeed when nothing
    is. A container without a pid namespace of its own (one that joined its pod's) leaves its init's children
    running when the init exits; containerd's runc shim kills them with `kill --all` then. Only the cgroup
    says what is the container's now: the init's pid may already belong to another process."""
    if not record.cgroups:
        return
    from engine.cgroups import load_manager

    load_manager(record.cgroups).signal_all(sig)  # cgroup.kill, or freeze + pidfds: never a reused pid
