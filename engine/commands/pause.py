"""engine pause <id>: freeze every process of a running container (its cgroup freezer)."""

from __future__ import annotations

from engine.cli import Context
from engine.pause import set_frozen

TYPE_CHECKING = False  # argparse only for the annotation: hot commands are parsed by hand
if TYPE_CHECKING:
    import argparse


def run(ctx: Context, args: argparse.Namespace) -> int:
    set_frozen(ctx, args.container_id, frozen=True)
    return 0
