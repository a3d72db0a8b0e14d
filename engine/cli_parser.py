"""argparse's definition of engine's command line: runc's commands and flags (what conmon and
containerd-shim-runc-v2 pass).

The definition, and only loaded when it is needed: engine/cli.py parses plain command lines with parse_fast, from
the table engine/cli_codegen.py generates from this parser (engine/cli_table.py), and hands anything unusual
(--help, an abbreviation, a flag it does not know) to argparse. Kept apart from cli.py so that every command does
not load the parser's code (~30 us of each `engine state`).
"""

from __future__ import annotations

import argparse


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
