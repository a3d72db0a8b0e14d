"""engine start <id>"""

from engine.cli import Context
from engine.start import start
from state.store import Store

TYPE_CHECKING = False  # argparse only for the annotation: the hot path parses argv by hand
if TYPE_CHECKING:
    import argparse


def run(ctx: Context, args: "argparse.Namespace") -> int:
    start(Store(ctx.root), args.container_id, ctx.log)
    return 0
