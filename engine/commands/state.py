"""engine state <id>: the runtime-spec state as JSON (runtime.md "Query State")."""

from engine.cli import Context
from state import jsonio
from state.store import Store

TYPE_CHECKING = False  # argparse only for the annotation: the hot path parses argv by hand
if TYPE_CHECKING:
    import argparse


def run(ctx: Context, args: "argparse.Namespace") -> int:
    # No lock: state.json is replaced atomically, so a plain read sees a whole record.
    record = Store(ctx.root).load(args.container_id)
    print(jsonio.dumps(record.public_state(), indent=2))
    return 0
