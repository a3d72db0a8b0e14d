"""The exit monitor: a container's exit reaches state.json (and the sync socket) within 100 ms, without any
engine process being the init's parent, and a dead monitor is replaced by the next command."""

from __future__ import annotations

import json
import os
import select
import signal
import time
from pathlib import Path

from engine.linux.syscalls import pidfd_open
from state.monitor import MONITOR_LOCK
from tests.integration.conftest import Engine
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


def test_exit_reaches_state_json_within_100ms(engine: Engine) -> None:
    cid = engine.new_id()
    engine("run", "--detach", "--bundle", str(engine.bundle(["sleep", "60"])), cid, check=True)
    pid = engine.state(cid)["pid"]
    assert wait_for(lambda: monitor_pid(engine) is not None)
    # No engine process is the init's parent (the monitor watches a pidfd).
    stat = Path(f"/proc/{pid}/stat").read_text()
    assert int(stat[stat.rindex(")") + 2 :].split()[1]) != monitor_pid(engine)
    pidfd = pidfd_open(pid)
    os.kill(pid, signal.SIGKILL)
    select.select([pidfd], [], [], 5)
    exited = time.monotonic()
    os.close(pidfd)
    assert wait_for(lambda: recorded_status(engine, cid) == "stopped", timeout=2)
    latency = time.monotonic() - exited
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
