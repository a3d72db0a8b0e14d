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
            # The latency is read from state.json's mtime, not from when this test's polling saw it: under a
            # loaded machine the test's own 20 ms polling sleeps (and its descheduling) are not the monitor's.
            killed = time.time()
            os.kill(pid, signal.SIGKILL)
            select.select([pidfd], [], [], 5)
            os.close(pidfd)
            assert wait_for(lambda: recorded_status(engine, cid) == "stopped", timeout=2)
            latency = (engine.root / cid / "state.json").stat().st_mtime - killed
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


def test_run_in_the_foreground_starts_no_monitor(engine: Engine) -> None:
    # `engine run` waits for its init itself and the monitor would leave that container alone, so neither its
    # create nor its start spawns one (a cold spawn is a double fork and a second interpreter: ~50 ms here).
    engine("run", "--bundle", str(engine.bundle(["true"], name="true")), engine.new_id(), check=True)
    assert not (engine.root / MONITOR_LOCK).exists()
    assert monitor_pid(engine) is None
    # A detached run still gets one: nobody else would record its exit.
    engine("run", "--detach", "--bundle", str(engine.bundle(["sleep", "60"])), engine.new_id(), check=True)
    assert wait_for(lambda: monitor_pid(engine) is not None)


def test_the_monitor_answers_as_soon_as_create_returns(engine: Engine) -> None:
    # create binds the monitor's socket (and takes its lock) before spawning it, so a command right after it
    # (`engine start`, as conmon and containerd call it) reaches that monitor instead of spawning a second one
    # while the first interpreter is still starting.
    import socket

    cid = engine.new_id()
    engine("create", "--bundle", str(engine.bundle(["sleep", "60"])), cid, check=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(engine.root / ".monitor.sock"))
    engine("start", cid, check=True)
    monitors = [pid for pid in os.listdir("/proc") if pid.isdigit() and is_monitor_of(engine, int(pid))]
    assert len(monitors) == 1, monitors
    assert wait_for(lambda: engine.state(cid)["status"] == "running")


def is_monitor_of(engine: Engine, pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"state.monitor" in cmdline and str(engine.root).encode() in cmdline


def test_start_replaces_a_monitor_that_died_after_create(engine: Engine) -> None:
    # start asks whether a monitor holds the root's lock (without waking it); a dead one has let it go, and
    # start spawns the next, which records the container's exit.
    cid = engine.new_id()
    engine("create", "--bundle", str(engine.bundle(["sleep", "60"])), cid, check=True)
    assert wait_for(lambda: monitor_pid(engine) is not None)
    os.kill(monitor_pid(engine), signal.SIGKILL)
    assert wait_for(lambda: monitor_pid(engine) is None)
    engine("start", cid, check=True)
    assert wait_for(lambda: monitor_pid(engine) is not None)
    os.kill(engine.state(cid)["pid"], signal.SIGKILL)
    assert wait_for(lambda: recorded_status(engine, cid) == "stopped", timeout=2)
