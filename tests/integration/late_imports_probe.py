"""Runs engine's CLI (argv as `engine`'s) with a watch on imports in the container's processes.

The rule it checks (engine/process_setup.py): once the init has pivoted into the rootfs (or chrooted into it, in
the host's mount namespace), and once exec's joiner has entered the container's mount namespace, the engine's
files and the stdlib are out of sight: an import that has to load a module fails there, or worse, loads a file
of the container's. The init and exec's process are forks of this very process (engine never re-executes
itself), so they inherit the watch:

- a finder first on sys.meta_path, armed at that point, reports every module Python tries to load (a module
  already in sys.modules never reaches a finder, so only a real load is reported);
- at the last execve, sys.modules is compared with its snapshot at the point (a module can also appear there
  without a finder: builtins, a direct assignment).

Reports go to the fd named by $LATE_IMPORTS_REPORT_FD, as lines starting with PREFIX. It is moved to fd 3: run
engine with --preserve-fds 1, so that the init and exec's process keep it whatever becomes of their stdio (a
terminal).
"""

from __future__ import annotations

import os
import sys

from engine.cli import main
from engine.linux.trampoline import Trampoline
from engine.setup import host_mount_ns
from engine.setup import rootfs as rootfs_setup

PREFIX = "late-imports-probe:"
REPORT_FD = 3

_armed: set[str] | None = None  # sys.modules' names when the engine's files went out of sight


def _report(line: str) -> None:
    os.write(REPORT_FD, f"{PREFIX} {line}\n".encode())


class _Watch:
    """A meta path finder that finds nothing: it only reports what is being looked for once armed."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if _armed is not None:
            _report(f"late import {name} (pid {os.getpid()})")


def _arm(where: str) -> None:
    global _armed
    _armed = set(sys.modules)
    _report(f"armed after {where} (pid {os.getpid()})")


def _arming(function, where: str):  # type: ignore[no-untyped-def]
    def wrapper(*args, **kw):  # type: ignore[no-untyped-def]
        result = function(*args, **kw)
        _arm(where)
        return result

    return wrapper


_execve = Trampoline.execve


def _checked_execve(self: Trampoline, args: list[str], env: dict[str, str]) -> None:
    if _armed is not None:
        new = sorted(set(sys.modules) - _armed)
        _report(f"execve {args[0]} (pid {os.getpid()}); loaded since armed: {','.join(new) or 'none'}")
    _execve(self, args, env)


def install() -> None:
    """Only in the process that runs engine under the probe: never on import (a test importing this module must
    not leave the watch in pytest)."""
    sys.meta_path.insert(0, _Watch())
    rootfs_setup.pivot_into = _arming(rootfs_setup.pivot_into, "pivot_into")
    host_mount_ns.enter_root = _arming(host_mount_ns.enter_root, "enter_root")
    Trampoline.execve = _checked_execve  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    given = int(os.environ.pop("LATE_IMPORTS_REPORT_FD"))
    if given != REPORT_FD:
        os.dup2(given, REPORT_FD)
        os.close(given)
    if "exec" in sys.argv[1:]:  # only then: engine.exec's imports must not hide a late import of the init's
        from engine import exec as engine_exec

        engine_exec.join_namespaces = _arming(engine_exec.join_namespaces, "join_namespaces")
    sys.argv[0] = "engine"
    sys.exit(main())
