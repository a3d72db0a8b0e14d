"""engine exec [flags] <container-id> <command> [args...]  |  engine exec --process process.json <container-id>

Runs a new process in a created or running container and exits with its status (see engine/exec.py and
docs/exec.md). Any failure of the engine's own exits 255, as runc's exec does.
"""

from __future__ import annotations

from engine import hotload

# First: exec and its child load ~40 of engine's modules (the launcher's finder, or one for their .pyc files).
hotload.install()

from engine.cli import Context  # noqa: E402
from engine.errors import EngineError  # noqa: E402
from state.store import Store  # noqa: E402

TYPE_CHECKING = False  # argparse only for the annotation: hot commands are parsed by hand
if TYPE_CHECKING:
    import argparse


def run(ctx: Context, args: argparse.Namespace) -> int:
    from engine.exec import ExecError, ExecOptions, exec_process

    command = list(args.exec_args)
    if command[:1] == ["--"]:  # `engine exec <id> -- cmd ...`: the separator is not part of the command
        command = command[1:]
    options = ExecOptions(
        container_id=args.container_id,
        command=command,
        process_path=args.process,
        tty=args.tty,
        console_socket=args.console_socket,
        detach=args.detach,
        pid_file=args.pid_file,
        cwd=args.cwd,
        env=list(args.env),
        user=args.user,
        additional_gids=list(args.additional_gids),
        caps=list(args.cap),
        no_new_privs=args.no_new_privs,
        preserve_fds=args.preserve_fds,
        apparmor=args.apparmor,
        process_label=args.process_label,
        cgroup=list(args.cgroup),
        ignore_paused=args.ignore_paused,
    )
    try:
        return exec_process(Store(ctx.root), options, ctx.log)
    except EngineError as err:
        err.exit_code = ExecError.exit_code  # "container does not exist" too: runc's exec fails with 255
        raise
