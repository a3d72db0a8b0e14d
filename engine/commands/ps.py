"""engine ps [--format table|json] <id>: the container's processes (containerd's shim reads --format json)."""

from __future__ import annotations

from engine.cli import Context
from engine.container import container_pids
from state import jsonio
from state.rules import ALIVE
from state.store import Store

TYPE_CHECKING = False  # argparse only for the annotation: the hot path parses argv by hand
if TYPE_CHECKING:
    import argparse


def run(ctx: Context, args: argparse.Namespace) -> int:
    record = Store(ctx.root).load(args.container_id)
    pids = container_pids(record) if record.observed_status() in ALIVE else []
    if args.format == "json":
        print(jsonio.dumps(pids))
        return 0
    print("PID   CMD")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        print(f"{pid:<5} {cmd}")
    return 0
