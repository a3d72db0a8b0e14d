"""engine delete [--force] <id>"""

from __future__ import annotations

import argparse

from engine.cli import Context
from engine.delete import delete
from state.store import Store


def run(ctx: Context, args: argparse.Namespace) -> int:
    delete(Store(ctx.root), args.container_id, args.force, ctx.log)
    return 0
