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
# What list, delete and the rest need beyond the bare interpreter: engine's own packages and the os module.
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
# What state, kill and start need: CORE without the os module and what it brings (~1 ms: _collections_abc's ABCs,
# os.environ; the hot path calls the kernel through posix, which os wraps: engine/paths.py), nor __future__ (a real
# module, ~0.1 ms: the modules on their path quote the annotations that name what only type checkers import).
# Nor _json (a shared library, ~0.25 ms): the plain state.json these read and write is parsed and written in Python
# (state/jsonio.py); list (many records) and create (a whole config) load it.
LEAN = {"engine", "state", "errno", "time"}
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
# What create's own process needs: _socket for the channels to its children, fcntl for the state lock, select (the
# exit monitor's spawn); the console (termios, struct) only with process.terminal, the id maps (pwd) only with a
# user namespace. The
# container's set-up code (engine.linux.ffi's _ctypes for the syscalls, the mounts, seccomp, the hooks' runner...) is
# imported by the forked child, while create waits on the kernel to put it in the cgroups
# (engine.create._intermediate); the init imports it all before pivot_root (test_late_imports.py).
# gc (built in): engine.cli turns the cyclic collector off for create and run.
CREATE_PARENT = {"_socket", "fcntl", "select", "gc"}
# `engine run` checks the console (termios, struct) for every container: it reads process.terminal before create.
RUN_CONSOLE = {"_struct", "struct", "termios"}
# `engine run` makes itself the child subreaper (a prctl: engine.linux.ffi, _ctypes) before create forks, to wait
# for its init.
RUN_SUBREAPER = {"_ctypes"}
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
# The usual delete, of a stopped container: its empty cgroups removed straight from state.json (remove.py). (A
# --force of a running one loads the cgroup manager, to kill, and select, to wait: delete's budget.)
STOPPED_DELETE = LEAN | LOCK
BUDGETS = {
    "state": LEAN,
    "list": CORE | {"pwd"},  # OWNER's name, as runc's (pwd is built into the interpreter: no file to load)
    "start": LEAN | LOCK | {"select"},  # no _socket, no os: start probes the monitor's lock (Store.monitor_running)
    "kill": LEAN,  # no lock to signal the init (kill --all takes one)
    "delete": CORE | LOCK | {"select"},
    "pause": CORE | LOCK,
    "resume": CORE | LOCK,
    "ps": CORE,
    "update": CORE | LOCK | CONTEXTLIB,
    "create": CORE | LOCK | {"math"} | CREATE_PARENT,  # math: cgroups' cpu quota conversion
    "run": CORE | LOCK | {"math"} | CREATE_PARENT | RUN_CONSOLE | RUN_SUBREAPER,
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
        # start and delete (which records this container's stop) fire the compiled table (state/lifecycle.py),
        # without loading the machine's definition (state/machine.py).
        assert "state.machine" not in modules, f"engine {argv[0]} imported state.machine"
        if argv[0] != "kill":  # engine/cli.py's OPERATION_COMMANDS: no package and module that only forward
            assert "engine.commands" not in modules, f"engine {argv[0]} imported engine.commands"


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
    # Its empty cgroups are removed at once (engine/cgroups/remove.py): no manager, no freezer, no kill.py, nor the
    # cgroupfs helpers (fs.py) or engine.container (nothing to signal).
    from tests.integration.test_lifecycle import wait_for

    container_id = engine.new_id()
    engine("run", "--detach", "--bundle", str(engine.bundle(["true"])), container_id, check=True)
    # Recorded as stopped (by the monitor), not only seen so: delete would record the stop itself (state.lifecycle).
    state_file = engine.root / container_id / "state.json"
    assert wait_for(lambda: json.loads(state_file.read_text())["status"] == "stopped")
    code, modules, errors = modules_of(tmp_path, "--root", str(engine.root), "delete", container_id)
    assert code == 0, errors
    assert "engine.cgroups.remove" in modules
    managers = {"engine.cgroups.manager", "engine.cgroups.v1", "engine.cgroups.v2", "engine.cgroups.freezer"}
    managers |= {"engine.cgroups.fs", "engine.container"}
    assert not managers & modules, sorted(managers & modules)
    within_budget("delete", {name.split(".")[0] for name in modules} - BARE)
    assert {name.split(".")[0] for name in modules} - BARE <= STOPPED_DELETE


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
    assert modules <= STOPPED_DELETE, sorted(modules - STOPPED_DELETE)


# ---- the split between create's own process and the child it forks --------------------------------------------


def modules_after(*imports: str) -> set[str]:
    statements = "; ".join(f"import {module}" for module in imports)
    code = f"import sys; sys.path += [{str(REPO)!r}]; {statements}; print(sorted(sys.modules))"
    result = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, check=True)
    return set(ast.literal_eval(result.stdout))


def test_create_leaves_the_set_up_code_to_its_child() -> None:
    # engine.create's own process makes no C call; its forked child imports engine.init (while
    # create waits on the cgroups), which loads seccomp only for a config with a filter, the pty (with the console
    # and termios) only for process.terminal, the hook runner only for hooks the init runs (init's
    # _import_what_the_config_needs).
    parent = modules_after("engine.commands.create")
    assert not {"_ctypes", "engine.init", "engine.pty", "engine.linux.kernel", "engine.setup.rootfs"} & parent
    child = modules_after("engine.init")
    assert {"_ctypes", "engine.linux.kernel", "engine.setup.rootfs"} <= child
    assert not {"engine.linux.seccomp", "collections", "array"} & child
    # The C calls go through engine.linux.ffi, made from _ctypes: ctypes' own package (its forty types, the types
    # module, its byte-order classes: ~2-3 ms of CPU) is not loaded, nor resource (a shared library) for the rlimits.
    assert not {"ctypes", "types", "resource"} & child, sorted({"ctypes", "types", "resource"} & child)
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


# `engine create` the way the `engine` command runs it, writing down the modules its own process had loaded when it
# forked its child (the audit event os.fork) and when it was done.
FORK_HARNESS = """
import os, sys
sys.path += [{repo!r}, {site!r}]
out, argv, at_fork = sys.argv[1], sys.argv[2:], []
sys.addaudithook(lambda event, args: event == "os.fork" and not at_fork and at_fork.append(sorted(sys.modules)))
from engine.cli import main
code = main(argv)
with open(out, "w") as f:
    f.write(repr((code, at_fork[0] if at_fork else [], sorted(sys.modules))))
"""


def test_create_plans_its_cgroups_before_it_forks(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # What create imports for the cgroups (the managers, the controllers of the config's linux.resources, the device
    # rules) and to poke the exit monitor at its end is loaded before the fork: after it, every page create writes
    # that its child still shares is copied first (~3 us a page on this machine), and imports write many.
    out = tmp_path / "at-fork.txt"
    argv = ["--root", str(engine.root), "create", "--bundle", str(engine.bundle(["sleep", "60"])), engine.new_id()]
    harness = FORK_HARNESS.format(repo=str(REPO), site=SITE_PACKAGES)
    with tempfile.TemporaryFile("w+") as stderr:  # files, not pipes: the init inherits stdio
        subprocess.run(
            [sys.executable, "-S", "-I", "-c", harness, str(out), *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            timeout=60,
            check=False,
        )
        stderr.seek(0)
        errors = stderr.read()
    assert out.exists(), f"harness failed: {errors}"
    code, at_fork, at_end = ast.literal_eval(out.read_text())
    assert code == 0, errors
    watched = {m for m in at_end if m.startswith(("engine.cgroups.", "engine.rootless.cgroups", "state.monitor"))}
    assert {"engine.cgroups.manager", "engine.cgroups.controllers.devices", "state.monitor"} <= watched
    late = watched - set(at_fork)
    assert not late, f"imported after the fork: {sorted(late)}"
