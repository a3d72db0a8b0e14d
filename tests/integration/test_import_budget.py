"""The hot commands stay cheap: `engine state`, `list`, `kill` and `delete` must not import the heavy dependencies.

containerd and conmon call `state` (and `kill`, `delete`) all the time; the card's dependencies cost
pydantic ~130 ms, pyroute2 ~260 ms, transitions ~50 ms, watchdog tens of ms to import (see
/work/shared/notes/performance-floor.md), while runc answers `state` in ~7 ms. Each command runs in a fresh
interpreter (a subprocess), so sys.modules shows exactly what that command imported. No root needed: the
containers are hand-written state.json records under a private --root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

# Top-level package names. pydantic_core comes with pydantic; naming it catches a direct import too.
HEAVY = ("pydantic", "pydantic_core", "pyroute2", "watchdog", "transitions")
# kill and delete may fire a state transition (state/machine.py uses `transitions`), but nothing else heavy.
HEAVY_BUT_TRANSITIONS = ("pydantic", "pydantic_core", "pyroute2", "watchdog")

# Runs engine's CLI in-process, then reports the exit code and the heavy packages that got imported.
# SystemExit is caught so that an argparse error is reported as a code instead of losing the module list.
HARNESS = """
import json, sys
out, heavy, argv = sys.argv[1], set(json.loads(sys.argv[2])), sys.argv[3:]
from engine.cli import main
try:
    code = main(argv)
except SystemExit as exit:
    code = exit.code
imported = sorted({name.split(".")[0] for name in sys.modules} & heavy)
with open(out, "w") as f:
    json.dump({"code": code, "imported": imported}, f)
"""


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def fake_container(root: Path, container_id: str, status: str, pid: int, pid_start_time: int | None) -> Path:
    """A state directory as engine create leaves it, minus the processes (state/store.py layout)."""
    directory = root / container_id
    directory.mkdir(parents=True, mode=0o700)
    record: dict[str, Any] = {
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


def engine_in_fresh_interpreter(tmp_path: Path, heavy: tuple[str, ...], *argv: str) -> tuple[int, list[str], str]:
    """(exit code, heavy packages imported, stdout) of `engine <argv>` run by a new interpreter."""
    out = tmp_path / "harness.json"
    # Files, not pipes: should a command ever leave a process behind (a created container's init), it would
    # hold a pipe open and hang the test; a file just gets written to.
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        subprocess.run(
            [sys.executable, "-c", HARNESS, str(out), json.dumps(heavy), *argv],
            stdout=stdout,
            stderr=stderr,
            timeout=60,
            cwd=tmp_path,
            check=False,
        )
        stdout.seek(0)
        stderr.seek(0)
        printed, errors = stdout.read(), stderr.read()
    assert out.exists(), f"harness failed: {errors}"
    result = json.loads(out.read_text())
    return result["code"], result["imported"], printed


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir(mode=0o700)
    return path


def own_start_time() -> int:
    stat = Path("/proc/self/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def test_state_imports_nothing_heavy(tmp_path: Path, root: Path) -> None:
    # Our own pid and start time: alive, so `state` says running (the liveness check runs too). (A running
    # record without a start time is corrupt: a reused pid cannot be told from the init.)
    fake_container(root, "c1", "running", os.getpid(), own_start_time())
    code, imported, stdout = engine_in_fresh_interpreter(tmp_path, HEAVY, "--root", str(root), "state", "c1")
    assert code == 0
    assert json.loads(stdout)["id"] == "c1"
    assert imported == [], f"`engine state` imported {imported}"


def test_list_imports_nothing_heavy(tmp_path: Path, root: Path) -> None:
    fake_container(root, "c1", "running", os.getpid(), own_start_time())
    fake_container(root, "c2", "stopped", 0, None)
    code, imported, stdout = engine_in_fresh_interpreter(tmp_path, HEAVY, "--root", str(root), "list", "-q")
    assert code == 0
    assert stdout.split() == ["c1", "c2"]
    assert imported == [], f"`engine list` imported {imported}"


def test_kill_of_a_dead_init_fails_without_heavy_imports(tmp_path: Path, root: Path) -> None:
    # The record says running, but its init is gone (and a start time no process has: a reused pid is not it).
    fake_container(root, "c1", "running", dead_pid(), 1)
    code, imported, _ = engine_in_fresh_interpreter(
        tmp_path, HEAVY_BUT_TRANSITIONS, "--root", str(root), "kill", "c1", "KILL"
    )
    assert code not in (0, None), "killing a container whose init is dead must fail"
    assert imported == [], f"`engine kill` imported {imported}"


def test_delete_of_a_stopped_container_without_heavy_imports(tmp_path: Path, root: Path) -> None:
    directory = fake_container(root, "c1", "stopped", 0, None)
    code, imported, _ = engine_in_fresh_interpreter(
        tmp_path, HEAVY_BUT_TRANSITIONS, "--root", str(root), "delete", "c1"
    )
    assert code == 0
    assert not directory.exists()
    assert imported == [], f"`engine delete` imported {imported}"
