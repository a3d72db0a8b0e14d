"""engine list [--format table|json] [-q]"""

from __future__ import annotations

import argparse
import json

from engine.cli import Context
from engine.errors import EngineError
from state.store import Store


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
        print(json.dumps(states))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]) for s in states]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0
