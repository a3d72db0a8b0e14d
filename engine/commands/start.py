"""engine start <id>"""

from __future__ import annotations

import argparse

from engine.cli import Context
from engine.start import start
from state.store import Store


def run(ctx: Context, args: argparse.Namespace) -> int:
    start(Store(ctx.root), args.container_id, ctx.log)
    return 0
