"""engine create [--bundle DIR] [--pid-file F] [--console-socket S] [--sync-socket S] <id>"""

from __future__ import annotations

from engine import hotload

# First: create and its child load ~70 of engine's modules (the launcher's finder, or one for their .pyc files).
hotload.install()

from engine.cli import Context  # noqa: E402
from engine.create import CreateOptions, create  # noqa: E402
from state import jsonio  # noqa: E402
from state.store import Store  # noqa: E402

# create loads _json anyway (engine/spec/version.py checks the ociVersion with its string encoder): let it read
# config.json too, rather than state/jsonio.py's plain path in Python first (an indented 3 KB document: ~0.1-0.2 ms).
jsonio.accelerate()

TYPE_CHECKING = False  # argparse only for the annotation: hot commands are parsed by hand
if TYPE_CHECKING:
    import argparse


def options_from(ctx: Context, args: argparse.Namespace) -> CreateOptions:
    return CreateOptions(
        container_id=args.container_id,
        bundle=args.bundle,
        pid_file=args.pid_file,
        console_socket=args.console_socket,
        no_pivot=args.no_pivot,
        preserve_fds=args.preserve_fds,
        sync_socket=args.sync_socket,
        hooks_dirs=ctx.hooks_dirs,
        systemd_cgroup=ctx.systemd_cgroup,
    )


def run(ctx: Context, args: argparse.Namespace) -> int:
    create(Store(ctx.root), options_from(ctx, args), ctx.log)
    return 0
