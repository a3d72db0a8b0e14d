"""Each command imports only what its budget allows: the hot paths stay lean.

Every command pays Python's start-up, and then its imports: containerd and conmon call `state`, `kill`,
`delete` all the time, and `start`/`create`/`run` for every container. The bare interpreter
(`python -S -I -c pass`) is the floor those commands are judged against (bench/run.py); pydantic
(~100 ms), pyroute2 (~260 ms), transitions (~30 ms), watchdog, orjson (~20 ms), argparse (re, gettext,
shutil), socket (enum, selectors), dataclasses (inspect) or typing each cost more than `engine state` does
altogether. So each command has a budget: the top-level modules it may import beyond the bare interpreter's.

Each command runs in a fresh interpreter started the way the `engine` command starts it (-S -I, the paths set
explicitly), so sys.modules shows exactly what that command imported. State commands run against real
containers (root); the parent's imports are counted (create's forked children import more, after the fork).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SITE_PACKAGES = sysconfig.get_paths()["purelib"]

# The dependencies no command on a container's path may import (the runtime works without them).
HEAVY = {
    "pydantic",
    "pydantic_core",
    "typing_extensions",
    "annotated_types",
    "typing_inspection",
    "transitions",
    "pyroute2",
    "watchdog",
    "orjson",
}
# What state and list need beyond the bare interpreter: engine's own packages and the os module.
CORE = {
    "engine",
    "state",
    "__future__",
    "os",
    "posixpath",
    "genericpath",
    "stat",
    "_stat",
    "_collections_abc",
    "errno",
    "time",
    "_json",
}
LOCK = {"fcntl"}  # the per-container lock: every command that changes a container
# collections (~1.5 ms): no command on a container's life needs it (engine/cgroups/layout.py's records are
# engine.record's, not namedtuples); update's contextlib brings it.
COLLECTIONS = {"collections", "_collections", "operator", "_operator", "itertools", "keyword", "reprlib"}
# contextlib and what it brings (~2 ms): engine/cgroups/controllers/devices.py imports it (update, create).
CONTEXTLIB = COLLECTIONS | {"contextlib", "functools", "_functools", "types", "math"}
# What exec imports today beyond that: the container set-up code (engine/exec.py, console.py, channel.py, seccomp...),
# to be cut down as create's was (see bench/README.md).
SETUP = {
    "_ast", "_bisect", "_bz2", "_compression", "_ctypes", "_locale", "_lzma", "_opcode", "_random", "_sha512",
    "_socket", "_sre", "_struct", "_typing", "_weakrefset", "array", "ast", "atexit", "bisect", "bz2", "copy",
    "copyreg", "ctypes", "dataclasses", "gc", "pwd", "dis", "enum", "fnmatch", "hooks", "importlib", "inspect", "json",
    "linecache", "locale", "lzma", "opcode", "random", "re", "resource", "select", "selectors", "shutil", "signal",
    "socket", "struct", "tempfile", "termios", "textwrap", "threading", "token", "tokenize", "traceback", "tty",
    "typing", "warnings", "weakref", "zlib",
}  # fmt: skip
# What create's own process needs: _socket for the channels to its children, the console's checks (termios, fcntl,
# struct, select), pwd for the id maps. The container's set-up code (ctypes for the syscalls, the mounts, seccomp,
# the hooks' runner...) is imported by the forked child, while create waits on the kernel to put it in the cgroups
# (engine.create._intermediate); the init imports it all before pivot_root (test_late_imports.py).
# gc (built in): engine.cli turns the cyclic collector off for create and run.
CREATE_PARENT = {"_socket", "_struct", "struct", "fcntl", "select", "termios", "pwd", "gc"}
# `engine run` makes itself the child subreaper (a prctl: ctypes) before create forks, to wait for its init.
RUN_SUBREAPER = {"_ctypes", "ctypes", "types"}
# What create and run no longer import (each named here cost ~1-10 ms of every create; bench/README.md, phase 2):
# dataclasses and collections (engine.record instead), typing (TYPE_CHECKING only), socket (_socket), json and re
# (state.jsonio), traceback, shutil, tempfile, threading and tty (run's terminal relay imports those when it runs),
# signal's enum wrappers (_signal), contextlib and functools (engine.errors.suppress), array (engine.linux.scm: it
# imports collections.abc), and what only the forked children use (resource, atexit, gc's callers).
CREATE_FORBIDDEN = {
    "dataclasses", "inspect", "ast", "dis", "tokenize", "linecache", "typing", "socket", "selectors", "json", "re",
    "traceback", "textwrap", "shutil", "fnmatch", "bz2", "lzma", "tempfile", "random", "threading", "tty", "signal",
    "enum", "contextlib", "functools", "array", "resource", "atexit", "collections", "operator", "itertools",
}  # fmt: skip
# Not for create either: ctypes (the syscalls are the children's; the console's checks and the cgroups need none).
FORBIDDEN = {"create": CREATE_FORBIDDEN | RUN_SUBREAPER, "run": CREATE_FORBIDDEN}
BUDGETS = {
    "state": CORE,
    "list": CORE | {"pwd"},  # OWNER's name, as runc's (pwd is built into the interpreter: no file to load)
    "start": CORE | LOCK | {"select"},  # no _socket: start asks whether the monitor runs by its lock
    "kill": CORE,  # no lock to signal the init (kill --all takes one)
    "delete": CORE | LOCK | {"select"},
    "pause": CORE | LOCK,
    "resume": CORE | LOCK,
    "ps": CORE,
    "update": CORE | LOCK | CONTEXTLIB,
    "create": CORE | LOCK | {"math"} | CREATE_PARENT,  # math: cgroups' cpu quota conversion
    "run": CORE | LOCK | {"math"} | CREATE_PARENT | RUN_SUBREAPER,
    "exec": CORE | LOCK | CONTEXTLIB | SETUP,
}

# Runs engine's CLI the way the `engine` command does, then writes the exit code and the top-level modules.
HARNESS = """
import sys
sys.path += [{repo!r}, {site!r}]
out, argv = sys.argv[1], sys.argv[2:]
from engine.cli import main
try:
    code = main(argv)
except SystemExit as exit:
    code = exit.code
with open(out, "w") as f:
    f.write(repr((code, sorted(sys.modules))))
"""


def bare_modules() -> set[str]:
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", "import sys; print(sorted({n.split('.')[0] for n in sys.modules}))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(ast.literal_eval(result.stdout))


BARE = bare_modules()


def imports_of(tmp_path: Path, *argv: str) -> tuple[int, set[str], str]:
    """(exit code, top-level modules beyond the bare interpreter's, stderr) of `engine <argv>`."""
    code, modules, errors = modules_of(tmp_path, *argv)
    return code, {name.split(".")[0] for name in modules} - BARE, errors


def modules_of(tmp_path: Path, *argv: str) -> tuple[int, set[str], str]:
    """(exit code, every module it imported, by its full name, stderr) of `engine <argv>`."""
    out = tmp_path / f"imports-{os.getpid()}-{len(list(tmp_path.iterdir()))}.txt"
    harness = HARNESS.format(repo=str(REPO), site=SITE_PACKAGES)
    # Files, not pipes: a created container's init inherits stdio and would hold a pipe open.
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        subprocess.run(
            [sys.executable, "-S", "-I", "-c", harness, str(out), *argv],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            timeout=60,
            cwd=tmp_path,
            check=False,
        )
        stderr.seek(0)
        errors = stderr.read()
    assert out.exists(), f"harness failed: {errors}"
    code, modules = ast.literal_eval(out.read_text())
    return code, set(modules), errors


def within_budget(command: str, modules: set[str]) -> None:
    heavy = modules & HEAVY
    assert not heavy, f"`engine {command}` imported {sorted(heavy)}"
    if command in FORBIDDEN:
        slow = modules & FORBIDDEN[command]
        assert not slow, f"`engine {command}` imported {sorted(slow)}, which create's path no longer needs"
    over = modules - BUDGETS[command]
    assert not over, f"`engine {command}` imported {sorted(over)}, beyond its budget"


def test_create_budget_excludes_what_create_stopped_importing() -> None:
    for command, forbidden in FORBIDDEN.items():
        assert not BUDGETS[command] & forbidden, command


def test_bare_interpreter_imports_no_os() -> None:
    # The floor the hot commands are measured against; if it changed, the budgets above mean something else.
    assert "os" not in BARE and "engine" not in BARE


# ---- the commands, on real containers ------------------------------------------------------------------------


@pytest.fixture
def created(engine, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    container_id = engine.new_id()
    engine("create", "--bundle", str(engine.bundle(["sleep", "600"])), container_id, check=True)
    return container_id


def run_engine(engine, tmp_path: Path, command: str, *args: str) -> set[str]:  # type: ignore[no-untyped-def]
    code, modules, errors = imports_of(tmp_path, "--root", str(engine.root), command, *args)
    assert code == 0, f"engine {command} failed: {errors}"
    within_budget(command, modules)
    return modules


def test_lifecycle_commands(engine, created: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_engine(engine, tmp_path, "state", created)
    run_engine(engine, tmp_path, "list")
    run_engine(engine, tmp_path, "start", created)
    run_engine(engine, tmp_path, "ps", "--format", "json", created)
    run_engine(engine, tmp_path, "pause", created)
    run_engine(engine, tmp_path, "resume", created)
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps({"pids": {"limit": 100}}))
    run_engine(engine, tmp_path, "update", "--resources", str(resources), created)
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"cwd": "/", "args": ["true"]}))
    run_engine(engine, tmp_path, "exec", "--process", str(process), created)
    run_engine(engine, tmp_path, "kill", created, "KILL")
    run_engine(engine, tmp_path, "delete", "--force", created)


def test_create_and_run(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    container_id = engine.new_id()
    bundle = engine.bundle(["sleep", "600"])
    run_engine(engine, tmp_path, "create", "--bundle", str(bundle), container_id)
    engine("delete", "--force", container_id, check=True)
    # With a sync socket (nobody listening: a warning), every transition publishes: still no orjson.
    sync = str(tmp_path / "nobody.sock")
    run_engine(engine, tmp_path, "create", "--bundle", str(bundle), "--sync-socket", sync, container_id)
    engine("delete", "--force", container_id, check=True)
    run_engine(engine, tmp_path, "run", "--bundle", str(engine.bundle(["true"], name="true")), engine.new_id())


def test_start_and_delete_load_no_hook_code_without_hooks(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Most containers have no hooks: create then keeps no hooks.json, and start and delete do not import
    # engine.hookpoints to find an empty set (tests/integration/test_hooks_lifecycle.py runs every stage).
    container_id = engine.new_id()
    engine("create", "--bundle", str(engine.bundle(["sleep", "600"])), container_id, check=True)
    assert not (engine.root / container_id / "hooks.json").exists()
    for argv in (("start", container_id), ("kill", container_id, "KILL"), ("delete", "--force", container_id)):
        code, modules, errors = modules_of(tmp_path, "--root", str(engine.root), *argv)
        assert code == 0, errors
        assert "engine.hookpoints" not in modules, f"engine {argv[0]} imported engine.hookpoints"


def test_a_budget_can_fail(engine, created: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The check itself works: `state` stays out of `create`'s budget.
    bundle = str(engine.bundle(["true"], name="b2"))
    modules = run_engine(engine, tmp_path, "create", "--bundle", bundle, engine.new_id())
    with pytest.raises(AssertionError, match="beyond its budget"):
        within_budget("state", modules)


# ---- no root needed: hand-written records -------------------------------------------------------------------


def fake_container(root: Path, container_id: str, status: str, pid: int, pid_start_time: int | None) -> Path:
    """A state directory as engine create leaves it, minus the processes (state/store.py layout)."""
    directory = root / container_id
    directory.mkdir(parents=True, mode=0o700)
    record = {
        "id": container_id,
        "bundle": str(root.parent / "bundle"),
        "status": status,
        "pid": pid,
        "pid_start_time": pid_start_time,
        "rootfs": str(root.parent / "bundle" / "rootfs"),
        "created": "2026-11-27T10:00:00.000000Z",
        "owner": "",
    }
    (directory / "state.json").write_text(json.dumps(record))
    return directory


def own_start_time() -> int:
    stat = Path("/proc/self/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_state_and_list_of_records(tmp_path: Path) -> None:
    root = tmp_path / "root"
    # Our own pid and start time: alive (a running record without a start time is corrupt: a reused pid
    # cannot be told from the init).
    fake_container(root, "c1", "running", os.getpid(), own_start_time())
    fake_container(root, "c2", "stopped", 0, None)
    code, modules, _ = imports_of(tmp_path, "--root", str(root), "state", "c1")
    assert code == 0
    within_budget("state", modules)
    code, modules, _ = imports_of(tmp_path, "--root", str(root), "list", "--format", "json")
    assert code == 0
    within_budget("list", modules)


def test_delete_of_a_stopped_container_loads_no_cgroup_manager(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Its empty cgroups are removed at once (engine/cgroups/remove.py): no manager, no freezer, no kill.py.
    from tests.integration.test_lifecycle import wait_for

    container_id = engine.new_id()
    engine("run", "--detach", "--bundle", str(engine.bundle(["true"])), container_id, check=True)
    assert wait_for(lambda: engine.state(container_id)["status"] == "stopped")
    code, modules, errors = modules_of(tmp_path, "--root", str(engine.root), "delete", container_id)
    assert code == 0, errors
    assert "engine.cgroups.remove" in modules
    managers = {"engine.cgroups.manager", "engine.cgroups.v1", "engine.cgroups.v2", "engine.cgroups.freezer"}
    assert not managers & modules, sorted(managers & modules)
    within_budget("delete", {name.split(".")[0] for name in modules} - BARE)


def test_kill_of_a_dead_init_and_delete_of_a_stopped_record(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fake_container(root, "c1", "running", dead_pid(), 1)
    code, modules, _ = imports_of(tmp_path, "--root", str(root), "kill", "c1", "KILL")
    assert code not in (0, None), "killing a container whose init is dead must fail"
    within_budget("kill", modules)
    directory = fake_container(root, "c2", "stopped", 0, None)
    code, modules, _ = imports_of(tmp_path, "--root", str(root), "delete", "c2")
    assert code == 0 and not directory.exists()
    within_budget("delete", modules)


# ---- the split between create's own process and the child it forks --------------------------------------------


def modules_after(*imports: str) -> set[str]:
    statements = "; ".join(f"import {module}" for module in imports)
    code = f"import sys; sys.path += [{str(REPO)!r}]; {statements}; print(sorted(sys.modules))"
    result = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, check=True)
    return set(ast.literal_eval(result.stdout))


def test_create_leaves_the_set_up_code_to_its_child() -> None:
    # engine.create's own process makes no syscall through ctypes; its forked child imports engine.init (while
    # create waits on the cgroups), which loads seccomp only for a config with a filter, the pty (with the console
    # and termios) only for process.terminal, the hook runner only for hooks the init runs (init's
    # _import_what_the_config_needs).
    parent = modules_after("engine.commands.create")
    assert not {"ctypes", "engine.init", "engine.pty", "engine.linux.kernel", "engine.setup.rootfs"} & parent
    child = modules_after("engine.init")
    assert {"ctypes", "engine.linux.kernel", "engine.setup.rootfs"} <= child
    assert not {"engine.linux.seccomp", "collections", "array"} & child
    assert not {"engine.pty", "engine.console", "termios", "hooks.runner"} & child


def test_the_cgroup_device_rules_load_no_collections() -> None:
    # create's own process imports engine.cgroups.devices for every container (the default rules): the collections
    # package (~1.5 ms) must not come with it (CREATE_FORBIDDEN says so for the whole command; this names the module).
    assert "collections" not in modules_after("engine.cgroups.devices", "engine.cgroups.controllers.devices")


def test_the_monitor_starts_without_socket_and_contextlib(tmp_path: Path) -> None:
    # A root's exit monitor is a fresh interpreter (state/monitor.py _spawn), started again whenever one idled out:
    # socket and contextlib (enum, selectors, collections, functools) were ~10 ms of its start. Runs the monitor's
    # main for an empty root (it returns at once when idle), as _spawn's child does.
    code = (
        f"import sys; sys.path[:0] = [{str(REPO)!r}]; from state import monitor; monitor.IDLE_EXIT = 0; "
        f"root = {str(tmp_path)!r}; import os; lock, server = monitor._claim(root, os.path.join(root, "
        "monitor.MONITOR_SOCKET)); monitor.main(root, lock, server); print(sorted(sys.modules))"
    )
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True)
    modules = set(ast.literal_eval(result.stdout))
    assert "state.store" in modules  # it did run
    assert not {"socket", "contextlib", "enum", "selectors", "collections"} & modules
