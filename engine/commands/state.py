"""engine state <id>: the runtime-spec state as JSON (runtime.md "Query State")."""

from __future__ import annotations

import argparse
import json

from engine.cli import Context
from state.store import Store


def run(ctx: Context, args: argparse.Namespace) -> int:
    # No lock: state.json is replaced atomically, so a plain read sees a whole record.
    record = Store(ctx.root).load(args.container_id)
    print(json.dumps(record.public_state(), indent=2))
    return 0
