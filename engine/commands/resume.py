"""engine resume <id>: thaw a paused container."""

from __future__ import annotations

from engine.cli import Context
from engine.pause import set_frozen

TYPE_CHECKING = False  # argparse only for the annotation: hot commands are parsed by hand
if TYPE_CHECKING:
    import argparse


def run(ctx: Context, args: argparse.Namespace) -> int:
    set_frozen(ctx, args.container_id, frozen=False)
    return 0
