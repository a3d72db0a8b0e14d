"""What containerd's runc shim relies on from the runtime on the Kubernetes path, checked on engine directly.

The shim parses runc's words and reads runc's log file; tests/integration/test_cri.py drives the whole path,
these pin the pieces it found (each failed there, or was racy there, before engine did the same as runc).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path

from tests.integration.conftest import ENGINE, Engine


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def cgroup_procs(cgroups_path: str) -> list[int]:
    """The processes in a container's cgroup, read from the pids hierarchy (v1) or cgroup2."""
    for base in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup"):
        procs = Path(base) / cgroups_path.lstrip("/") / "cgroup.procs"
        if procs.exists():
            return [int(p) for p in procs.read_text().split()]
    raise AssertionError(f"no cgroup.procs for {cgroups_path}")


def stopped_with_a_child_left(engine: Engine) -> tuple[str, str]:
    """A stopped container whose init left a child running (no pid namespace of its own, as a pod's app container
    sharing the pod's): its id and cgroupsPath."""
    cid = engine.new_id()
    cgroups_path = f"/engine-test-{cid}"
    bundle = engine.bundle(["sh", "-c", "sleep 1000 & exit 0"], name="no-pidns")
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"]
    config["linux"]["cgroupsPath"] = cgroups_path
    (bundle / "config.json").write_text(json.dumps(config))
    engine("run", "--detach", "--bundle", str(bundle), cid, check=True)
    assert wait_for(lambda: engine.state(cid)["status"] == "stopped")
    return cid, cgroups_path


def test_kill_of_a_stopped_container_says_container_not_running(engine: Engine) -> None:
    # The shim turns a failed kill whose message has runc's "container not running" into "process already
    # finished"; any other wording fails the kill, and with it the CRI's handling of the container's exit
    # (StopContainer then waits out its deadline).
    cid = engine.new_id()
    engine("run", "--detach", "--bundle", str(engine.bundle(["true"])), cid, check=True)
    assert wait_for(lambda: engine.state(cid)["status"] == "stopped")
    late = engine("kill", cid, "KILL")
    assert late.returncode != 0
    assert "container not running" in late.stderr, late.stderr


def test_kill_all_of_a_stopped_container_kills_what_its_init_left(engine: Engine) -> None:
    # A container without a pid namespace of its own (a pod's app container sharing the pod's) leaves its init's
    # children running when the init exits; the shim then runs `kill --all <id> KILL`, as runc allows on a
    # stopped container: what is still in the container's cgroup is signalled, and the command succeeds.
    cid, cgroups_path = stopped_with_a_child_left(engine)
    leftovers = cgroup_procs(cgroups_path)
    assert len(leftovers) == 1 and b"sleep" in Path(f"/proc/{leftovers[0]}/cmdline").read_bytes()

    engine("kill", "--all", cid, "KILL", check=True)
    assert wait_for(lambda: cgroup_procs(cgroups_path) == []), "kill --all left the init's child running"
    engine("delete", cid, check=True)
    assert not os.path.exists(f"/sys/fs/cgroup/pids{cgroups_path}")


def test_delete_of_a_stopped_container_kills_what_its_init_left(engine: Engine) -> None:
    # delete removes a stopped container's empty cgroups at once (rmdir, as runc); a busy one (here the init's
    # child, left running without a pid namespace to take it down) is found, killed and removed, as before.
    cid, cgroups_path = stopped_with_a_child_left(engine)
    [leftover] = cgroup_procs(cgroups_path)
    fd = os.pidfd_open(leftover)
    try:
        engine("delete", cid, check=True)
        assert select.select([fd], [], [], 10)[0], "delete left the init's child running"
    finally:
        os.close(fd)
    assert not os.path.exists(f"/sys/fs/cgroup/pids{cgroups_path}")


def test_kill_all_of_a_stopped_container_without_leftovers_succeeds(engine: Engine) -> None:
    cid = engine.new_id()
    engine("run", "--detach", "--bundle", str(engine.bundle(["true"])), cid, check=True)
    assert wait_for(lambda: engine.state(cid)["status"] == "stopped")
    engine("kill", "--all", cid, "KILL", check=True)


def test_an_error_reaches_the_log_file_when_stderr_is_read_only(engine: Engine, tmp_path: Path) -> None:
    # A pod sandbox's runtime gets /dev/null opened read-only as stdio from the shim (writes fail with EBADF);
    # the shim reports the runtime's error from the --log file, so the message must get there anyway.
    cid = engine.new_id()
    bundle = engine.bundle(["/no/such/program"])
    log = tmp_path / "log.json"
    create = ["--bundle", str(bundle), cid]
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        result = subprocess.run(
            [ENGINE, "--root", str(engine.root), "--log", str(log), "--log-format", "json", "create", *create],
            stdin=null,
            stdout=null,
            stderr=null,
            timeout=30,
        )
    finally:
        os.close(null)
    assert result.returncode == 1
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["level"] for line in lines] == ["error"], lines
    assert "/no/such/program" in lines[0]["msg"]
