"""engine delete [--force] <id>"""

from engine.cli import Context
from engine.delete import delete
from state.store import Store

TYPE_CHECKING = False  # argparse only for the annotation: the hot path parses argv by hand
if TYPE_CHECKING:
    import argparse


def run(ctx: Context, args: "argparse.Namespace") -> int:
    delete(Store(ctx.root), args.container_id, args.force, ctx.log, systemd_cgroup=ctx.systemd_cgroup)
    return 0
