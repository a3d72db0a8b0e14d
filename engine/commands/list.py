"""engine list [--format table|json] [-q]"""

from __future__ import annotations

from engine.cli import Context
from engine.errors import EngineError
from state import jsonio
from state.store import Store

TYPE_CHECKING = False  # argparse only for the annotation: the hot path parses argv by hand
if TYPE_CHECKING:
    import argparse


def run(ctx: Context, args: argparse.Namespace) -> int:
    store = Store(ctx.root)
    states = []
    for container_id in store.ids():
        try:
            states.append(store.load(container_id).public_state())
        except EngineError:
            continue  # deleted while we listed, or still being claimed
    if args.quiet:
        for state in states:
            print(state["id"])
    elif args.format == "json":
        print(jsonio.dumps(states))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]) for s in states]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0
