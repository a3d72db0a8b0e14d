"""The exit monitor: a container's exit reaches state.json (and the sync socket) within 100 ms, without any
engine process being the init's parent, and a dead monitor is replaced by the next command."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.linux.syscalls import pidfd_open
from state.monitor import MONITOR_LOCK
from tests.integration.conftest import ENGINE, Engine
from tests.integration.test_lifecycle import wait_for


def recorded_status(engine: Engine, cid: str) -> str:
    """The status as written in state.json (not as derived by `engine state`)."""
    return json.loads((engine.root / cid / "state.json").read_text())["status"]


def monitor_pid(engine: Engine) -> int | None:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if b"state.monitor" in cmdline and str(engine.root).encode() in cmdline:
                return int(name)
    return None


# A supervisor's stand-in (conmon and containerd-shim are subreapers): it runs one command, writes its exit
# status to argv[1], then reaps whatever is orphaned below it until it is killed.
SUBREAPER = """
import ctypes, os, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
status = subprocess.call(sys.argv[2:], stdin=subprocess.DEVNULL)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(status))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.05)
"""


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def test_exit_reaches_state_json_within_100ms(engine: Engine, tmp_path: Path) -> None:
    cid = engine.new_id()
    bundle = engine.bundle(["sleep", "60"])
    status = tmp_path / "run.status"
    command = [ENGINE, "--root", str(engine.root), "run", "--detach", "--bundle", str(bundle), cid]
    with tempfile.TemporaryFile() as out:
        reaper = subprocess.Popen([sys.executable, "-c", SUBREAPER, str(status), *command], stdout=out, stderr=out)
        try:
            assert wait_for(status.exists, timeout=30), "engine run --detach did not return"
            assert status.read_text() == "0", out.seek(0) or out.read()
            pid = engine.state(cid)["pid"]
            assert wait_for(lambda: monitor_pid(engine) is not None)
            # The init's parent is the supervisor's subreaper: not the monitor (it watches a pidfd), not an
            # intermediate engine process, no engine process at all.
            assert parent_of(pid) == reaper.pid, (parent_of(pid), Path(f"/proc/{parent_of(pid)}/cmdline").read_bytes())
            pidfd = pidfd_open(pid)
            os.kill(pid, signal.SIGKILL)
            select.select([pidfd], [], [], 5)
            exited = time.monotonic()
            os.close(pidfd)
            assert wait_for(lambda: recorded_status(engine, cid) == "stopped", timeout=2)
            latency = time.monotonic() - exited
        finally:
            reaper.kill()
            reaper.wait()
    assert latency < 0.1, f"state.json said stopped {latency * 1000:.0f} ms after the exit"
    record = json.loads((engine.root / cid / "state.json").read_text())
    assert record["finished"] is not None


def test_a_dead_monitor_is_restarted_and_state_stays_truthful(engine: Engine) -> None:
    first = engine.new_id()
    engine("run", "--detach", "--bundle", str(engine.bundle(["sleep", "60"])), first, check=True)
    assert wait_for(lambda: monitor_pid(engine) is not None)
    os.kill(monitor_pid(engine), signal.SIGKILL)
    assert wait_for(lambda: monitor_pid(engine) is None)
    pid = engine.state(first)["pid"]
    os.kill(pid, signal.SIGKILL)
    # Nobody watches: state.json still says running, but `engine state` tells the truth.
    assert wait_for(lambda: engine.state(first)["status"] == "stopped")
    assert recorded_status(engine, first) == "running"
    # The next command that needs a monitor starts one, which re-derives everything from the state directory.
    second = engine.new_id()
    engine("create", "--bundle", str(engine.bundle(["sleep", "60"])), second, check=True)
    assert wait_for(lambda: monitor_pid(engine) is not None)
    assert wait_for(lambda: recorded_status(engine, first) == "stopped", timeout=2)
    assert (engine.root / MONITOR_LOCK).exists()
