"""`engine`: runc's command line (the commands and flags conmon and containerd-shim-runc-v2 pass).

Each command lives in engine/commands/<name>.py and is imported only when chosen, so `engine state` never
pays for pydantic, pyroute2 or watchdog.
"""

from __future__ import annotations

import importlib
import sys
from types import SimpleNamespace

from engine import SPEC_VERSION, __version__
from engine.errors import EngineError
from engine.log import Log

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


class Context:
    """What every command gets from the global flags. (Not a dataclass: that import costs ~15 ms.)"""

    def __init__(self, root: str | None, log: Log, systemd_cgroup: bool, hooks_dirs: list[str]) -> None:
        self._root = root
        self.log = log
        self.systemd_cgroup = systemd_cgroup
        self.hooks_dirs = hooks_dirs

    @property
    def root(self) -> str:
        """--root, or the default for whoever runs us (engine/rootless/state_root.py): resolved on first use, so
        that `spec` and `features` work without a state directory."""
        if self._root is None:
            from engine.rootless.state_root import default_root

            self._root = default_root()
        return self._root


def _add_create_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", "-b", default=".", help="path to the bundle directory (default: current directory)")
    p.add_argument("--pid-file", help="write the container init's host pid to this file")
    p.add_argument("--console-socket", help="unix socket that receives the console's pty master (SCM_RIGHTS)")
    p.add_argument("--no-pivot", action="store_true", help="use MS_MOVE + chroot instead of pivot_root")
    p.add_argument("--no-new-keyring", action="store_true", help="do not create a new session keyring")
    p.add_argument("--preserve-fds", type=int, default=0, help="pass N extra fds (from 3) to the container")
    p.add_argument("--sync-socket", help="unix socket that receives every state change as a JSON message")
    p.add_argument("container_id", metavar="<container-id>")


def build_parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="engine", description="An OCI runtime-spec container runtime.", allow_abbrev=False
    )
    parser.add_argument(
        "--root", help="directory for container state (default /run/engine, $XDG_RUNTIME_DIR/engine when rootless)"
    )
    parser.add_argument("--log", help="write log messages to this file")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    parser.add_argument(
        "--systemd-cgroup",
        action="store_true",
        help="create the container's cgroup as a systemd scope (cgroupsPath slice:prefix:name)",
    )
    parser.add_argument("--hooks-dir", action="append", default=[], help="OCI hooks.d directory (repeatable)")
    parser.add_argument("--rootless", default="auto", help=argparse.SUPPRESS)  # accepted for runc compatibility
    parser.add_argument("--criu", help=argparse.SUPPRESS)
    parser.add_argument("--version", "-v", action="store_true", help="print the version")
    sub = parser.add_subparsers(dest="command", metavar="<command>")

    p = sub.add_parser("create", help="create a container", allow_abbrev=False)
    _add_create_flags(p)

    p = sub.add_parser("run", help="create and start a container, and wait for it", allow_abbrev=False)
    _add_create_flags(p)
    p.add_argument("--detach", "-d", action="store_true", help="do not wait for the container to exit")
    p.add_argument("--keep", action="store_true", help="do not delete the container after it exits")

    p = sub.add_parser("start", help="run the user's program in a created container", allow_abbrev=False)
    p.add_argument("container_id", metavar="<container-id>")

    p = sub.add_parser("state", help="print the state of a container as JSON", allow_abbrev=False)
    p.add_argument("container_id", metavar="<container-id>")

    p = sub.add_parser("kill", help="send a signal to the container's init (default SIGTERM)", allow_abbrev=False)
    p.add_argument("--all", "-a", action="store_true", help="signal every process in the container")
    p.add_argument("container_id", metavar="<container-id>")
    p.add_argument("signal", nargs="?", default="SIGTERM")

    p = sub.add_parser("delete", help="delete a stopped container", allow_abbrev=False)
    p.add_argument("--force", "-f", action="store_true", help="kill the container first if it is not stopped")
    p.add_argument("container_id", metavar="<container-id>")

    p = sub.add_parser("list", help="list containers", allow_abbrev=False)
    p.add_argument("--format", "-f", choices=("table", "json"), default="table")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the ids")

    p = sub.add_parser("spec", help="write a default config.json", allow_abbrev=False)
    p.add_argument("--bundle", "-b", default=".", help="directory to write config.json into")
    p.add_argument("--rootless", action="store_true", help="a config for a rootless container")

    sub.add_parser("features", help="print the features this engine supports (JSON)", allow_abbrev=False)

    p = sub.add_parser("exec", help="run a new process inside a created or running container", allow_abbrev=False)
    p.add_argument("--process", "-p", help="path to a process.json (config.md process) to run")
    p.add_argument("--tty", "-t", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("--console-socket", help="unix socket that receives the pty master (with --tty)")
    p.add_argument("--detach", "-d", action="store_true", help="do not wait for the process to exit")
    p.add_argument("--pid-file", help="write the process's host pid to this file")
    p.add_argument("--cwd", help="working directory inside the container")
    p.add_argument("--env", "-e", action="append", default=[], help="KEY=VALUE (repeatable)")
    p.add_argument("--user", "-u", help="uid[:gid]")
    p.add_argument("--additional-gids", "-g", action="append", default=[], help="additional gid (repeatable)")
    p.add_argument("--cap", "-c", action="append", default=[], help="add a capability (repeatable)")
    p.add_argument("--no-new-privs", action="store_true", help="set no_new_privs for the process")
    p.add_argument("--preserve-fds", type=int, default=0, help="pass N extra fds (from 3) to the process")
    p.add_argument("--apparmor", help="AppArmor profile for the process")
    p.add_argument("--process-label", help="SELinux label for the process")
    p.add_argument("--cgroup", action="append", default=[], help="[controller:]path: join a sub-cgroup (repeatable)")
    p.add_argument("--ignore-paused", action="store_true", help="allow exec in a paused container")
    p.add_argument("container_id", metavar="<container-id>")
    p.add_argument("exec_args", metavar="command", nargs=argparse.REMAINDER, help="the program and its arguments")

    p = sub.add_parser("ps", help="list the container's processes", allow_abbrev=False)
    p.add_argument("--format", "-f", choices=("table", "json"), default="table")
    p.add_argument("container_id", metavar="<container-id>")
    p.add_argument("ps_args", metavar="ps options", nargs=argparse.REMAINDER, help="passed to ps (default -ef)")

    p = sub.add_parser("pause", help="freeze every process of a running container", allow_abbrev=False)
    p.add_argument("container_id", metavar="<container-id>")
    p = sub.add_parser("resume", help="thaw a paused container", allow_abbrev=False)
    p.add_argument("container_id", metavar="<container-id>")

    p = sub.add_parser("update", help="change a container's cgroup resources", allow_abbrev=False)
    from engine.commands.update import add_flags  # runc's update flags, next to the code that reads them

    add_flags(p)

    p = sub.add_parser("events", help="stream state changes as JSON lines", allow_abbrev=False)
    p.add_argument("--follow", "-f", action="store_true", help="keep streaming (the only mode)")
    p.add_argument("container_id", nargs="?", metavar="<container-id>", help="only this container")
    return parser


# The hot commands a supervisor calls many times a second, with the flags they pass: parsed by hand, because
# argparse (and the shutil, locale and gettext it pulls in) costs more than the rest of `engine state`.
_HOT = {"state": set(), "start": set(), "kill": {"--all", "-a"}, "delete": {"--force", "-f"}}
_GLOBAL_VALUE = {"--root", "--log", "--log-format"}


def parse_hot(argv: list[str]) -> SimpleNamespace | None:
    """The Namespace argparse would give for `[globals] state|start|kill|delete ...`, or None to fall back to
    argparse (anything unusual: --help, an unknown flag, a missing id)."""
    values = {
        "root": None,
        "log": None,
        "log_format": "text",
        "debug": False,
        "systemd_cgroup": False,
        "hooks_dir": [],
        "version": False,
    }
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        flag, eq, value = argv[i].partition("=")
        if flag in _GLOBAL_VALUE:
            if not eq:
                if i + 1 >= len(argv):
                    return None
                i += 1
                value = argv[i]
            values[flag[2:].replace("-", "_")] = value
        elif flag in ("--debug", "--systemd-cgroup") and not eq:
            values[flag[2:].replace("-", "_")] = True  # podman passes --systemd-cgroup to every command
        else:
            return None
        i += 1
    if i >= len(argv) or argv[i] not in _HOT or values["log_format"] not in ("text", "json"):
        return None
    command, rest = argv[i], argv[i + 1 :]
    flags = [a for a in rest if a.startswith("-")]
    positional = [a for a in rest if not a.startswith("-")]
    if any(f not in _HOT[command] for f in flags) or not positional:
        return None
    if len(positional) > (2 if command == "kill" else 1):
        return None
    ns = SimpleNamespace(**values, command=command, container_id=positional[0])
    if command == "kill":
        ns.all = bool(flags)
        ns.signal = positional[1] if len(positional) > 1 else "SIGTERM"
    elif command == "delete":
        ns.force = bool(flags)
    return ns


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = parse_hot(argv) or build_parser().parse_args(argv)
    if args.version:
        print(f"engine version {__version__}\nspec: {SPEC_VERSION}")
        return 0
    log = Log(args.log, args.log_format, args.debug)
    if args.command is None:
        log.error("no command given (try --help)")
        return 2
    ctx = Context(root=args.root, log=log, systemd_cgroup=args.systemd_cgroup, hooks_dirs=args.hooks_dir)
    try:
        module = importlib.import_module(f"engine.commands.{args.command}")
        return module.run(ctx, args)
    except EngineError as err:
        log.error(str(err))
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout's reader went away (`engine list | head`): not an error of ours.
        sys.stdout = None  # type: ignore[assignment]  # no flush of the broken pipe at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
