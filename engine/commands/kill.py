"""engine kill [--all] <id> [signal]   (runtime.md "Kill"; default SIGTERM as runc)"""

from __future__ import annotations

from engine.cli import Context
from engine.container import signal_all, signal_init
from engine.errors import InvalidState
from engine.signals import parse_signal
from state.rules import require_killable
from state.store import Store

TYPE_CHECKING = False  # argparse only for the annotation: the hot path parses argv by hand
if TYPE_CHECKING:
    import argparse


def run(ctx: Context, args: argparse.Namespace) -> int:
    sig = parse_signal(args.signal)
    store = Store(ctx.root)
    with store.locked(args.container_id, shared=True) as dir_fd:
        record = store.load(args.container_id, dir_fd)
        require_killable(args.container_id, record.observed_status())
        if args.all:
            signal_all(record, sig)
        elif not signal_init(record, sig):
            raise InvalidState(f"cannot kill container {args.container_id!r}: it is stopped")
        ctx.log.debug(f"kill {args.container_id}: sent signal {sig} to {'every process' if args.all else 'the init'}")
    return 0
