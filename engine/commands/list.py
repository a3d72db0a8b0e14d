"""engine list [--format table|json] [-q]"""

from __future__ import annotations

import os

from engine.cli import Context
from engine.errors import EngineError
from state import jsonio
from state.store import Store

TYPE_CHECKING = False  # argparse only for the annotation: the hot path parses argv by hand
if TYPE_CHECKING:
    import argparse


def _owner_name(uid: int, names: dict[int, str]) -> str:
    """runc's OWNER: the user owning the container's state directory, "#<uid>" when it has no name."""
    if uid not in names:
        import pwd

        try:
            names[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            names[uid] = f"#{uid}"
    return names[uid]


def run(ctx: Context, args: argparse.Namespace) -> int:
    store = Store(ctx.root)
    states = []
    names: dict[int, str] = {}
    ids = store.ids()
    if len(ids) > 8:
        jsonio.accelerate()  # many state.json files: _json reads them faster, once loaded (state/jsonio.py)
    for container_id in ids:
        try:
            state = store.load(container_id).public_state()
            state["owner"] = _owner_name(os.stat(store.path(container_id)).st_uid, names)
        except (EngineError, FileNotFoundError):
            continue  # deleted while we listed, or still being claimed
        states.append(state)
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
