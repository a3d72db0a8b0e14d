"""The container's cgroups as the engine wires them: limits visible inside, pause/resume through the freezer,
kill --all over the cgroup, and nothing left after delete or a failed create."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from engine.spec.default import default_mounts
from tests.integration.conftest import Engine, cgroup_candidates
from tests.integration.test_lifecycle import wait_for

CGROUP_ROOT = Path("/sys/fs/cgroup")


def leftover_cgroups(cid: str) -> list[str]:
    """The container's default cgroup (engine/<id>) where it would be in each hierarchy, if it still exists. Not
    a walk of /sys/fs/cgroup: other people's cgroups come and go there meanwhile."""
    return sorted(d for d in cgroup_candidates(f"engine/{cid}") if Path(d).exists())


def own_cgroup(controller: str) -> Path:
    """The directory of a container's cgroup below ours (the default cgroupsPath is relative: engine/<id>)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            return CGROUP_ROOT / controller / path.lstrip("/")
    raise AssertionError(f"no {controller} hierarchy")


def bundle_with(engine: Engine, args: list[str], resources: dict) -> Path:
    bundle = engine.bundle(args)
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["resources"] = resources
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def test_limits_are_visible_inside_and_removed_by_delete(engine: Engine) -> None:
    cid = engine.new_id()
    bundle = bundle_with(
        engine,
        [
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; grep -c . /proc/self/cgroup",
        ],
        {"memory": {"limit": 64 * 1024 * 1024}, "pids": {"limit": 42}, "devices": [{"allow": False, "access": "rwm"}]},
    )
    out = engine("run", "--bundle", str(bundle), cid, check=True).stdout.split()
    assert out[:2] == [str(64 * 1024 * 1024), "42"]
    assert leftover_cgroups(cid) == []


COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /mnt/count; sleep 0.05; done"


def counting_container(engine: Engine, tmp_path: Path) -> tuple[str, Path]:
    """A running container that counts in /mnt/count (a host directory), every 50 ms."""
    shared = tmp_path / "shared"
    shared.mkdir()
    mounts = [*default_mounts(), {"destination": "/mnt", "type": "bind", "source": str(shared), "options": ["rbind"]}]
    cid = engine.new_id()
    engine("run", "--detach", "--bundle", str(engine.bundle(["sh", "-c", COUNTER], mounts=mounts)), cid, check=True)
    count = shared / "count"
    assert wait_for(lambda: count.exists() and count.read_text().strip() != "")
    return cid, count


def counted(count: Path) -> int:
    text = count.read_text().strip()
    return int(text) if text else -1  # caught between the truncate and the write


def makes_progress(count: Path, within: float = 5.0) -> bool:
    before = counted(count)
    return wait_for(lambda: counted(count) > before + 1, timeout=within)


def freezer_says(engine: Engine, cid: str) -> str:
    """What the container's freezer files say, from the cgroups state.json records: v1's freezer.state
    (FROZEN, THAWED), or cgroup v2's cgroup.freeze and the kernel's "frozen" in cgroup.events."""
    dirs = json.loads((engine.root / cid / "state.json").read_text())["cgroups"]["dirs"]
    if "freezer" in dirs:
        return Path(dirs["freezer"], "freezer.state").read_text().strip()
    unified = Path(dirs["unified"])
    events = dict(line.split() for line in (unified / "cgroup.events").read_text().splitlines())
    return {("1", "1"): "FROZEN", ("0", "0"): "THAWED"}.get(
        ((unified / "cgroup.freeze").read_text().strip(), events["frozen"]), "FREEZING"
    )


def check_pause_and_resume(engine: Engine, tmp_path: Path) -> None:
    """pause freezes every process of the container (the freezer says FROZEN, the count stops), resume thaws
    them (THAWED, the count goes on); a second pause is an error; a paused container can be force-deleted."""
    cid, count = counting_container(engine, tmp_path)
    assert makes_progress(count)
    engine("pause", cid, check=True)
    assert engine.state(cid)["status"] == "paused"
    assert wait_for(lambda: freezer_says(engine, cid) == "FROZEN"), freezer_says(engine, cid)
    frozen_at = counted(count)
    time.sleep(0.5)  # ten counts' worth
    assert counted(count) == frozen_at, "the container made progress while paused"
    again = engine("pause", cid)
    assert again.returncode != 0 and "paused" in again.stderr
    engine("resume", cid, check=True)
    assert engine.state(cid)["status"] == "running"
    assert freezer_says(engine, cid) == "THAWED"
    assert makes_progress(count), "the container made no progress after resume"
    engine("pause", cid, check=True)
    engine("delete", "--force", cid, check=True)  # a paused container can still be force-deleted
    assert leftover_cgroups(cid) == []


def test_pause_and_resume(engine: Engine, tmp_path: Path) -> None:
    check_pause_and_resume(engine, tmp_path)


def test_kill_all_reaches_processes_outside_the_pid_namespace_too(engine: Engine) -> None:
    """Without a pid namespace of its own, only the cgroup knows which processes are the container's."""
    cid = engine.new_id()
    bundle = engine.bundle(["sh", "-c", "sleep 60 & sleep 60 & wait"])
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"]
    (bundle / "config.json").write_text(json.dumps(config))
    engine("run", "--detach", "--bundle", str(bundle), cid, check=True)
    procs = own_cgroup("pids") / "engine" / cid / "cgroup.procs"
    assert wait_for(lambda: len(procs.read_text().split()) == 3)
    pids = procs.read_text().split()
    assert json.loads(engine("ps", "--format", "json", cid, check=True).stdout) == sorted(
        map(int, pids), key=lambda p: p != int(engine.state(cid)["pid"])
    )
    engine("kill", "--all", cid, "KILL", check=True)
    assert wait_for(lambda: all(not Path(f"/proc/{p}").exists() for p in pids))
    engine("delete", cid, check=True)
    assert leftover_cgroups(cid) == []


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({"cpu": {"cpus": "999"}}, "linux.resources.cpu.cpus"),
        ({"memory": {"limit": 64 * 1024 * 1024, "swap": 1024 * 1024}}, "linux.resources.memory.swap"),
    ],
)
def test_a_failing_cgroup_setting_fails_create_and_leaves_nothing(
    engine: Engine, resources: dict, expected: str
) -> None:
    cid = engine.new_id()
    result = engine("create", "--bundle", str(bundle_with(engine, ["sleep", "60"], resources)), cid)
    assert result.returncode != 0 and expected in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (engine.root / cid).exists()
    assert leftover_cgroups(cid) == []


def test_update_changes_a_running_containers_limits(engine: Engine) -> None:
    cid = engine.new_id()
    engine("run", "--detach", "--bundle", str(engine.bundle(["sleep", "60"])), cid, check=True)
    engine("update", "--memory", str(48 * 1024 * 1024), "--pids-limit", "33", cid, check=True)
    assert (own_cgroup("memory") / "engine" / cid / "memory.limit_in_bytes").read_text().strip() == str(
        48 * 1024 * 1024
    )
    assert (own_cgroup("pids") / "engine" / cid / "pids.max").read_text().strip() == "33"
    bad = engine("update", "--resources", "-", cid, input=b'{"memory": {"limit": "x"}}')
    assert bad.returncode != 0 and "memory.limit" in bad.stderr
    assert bad.stderr.startswith("engine: --resources (standard input): memory.limit:"), bad.stderr
    # Standard input may be a socket (a supervisor's): read from fd 0, not by reopening /dev/stdin (ENXIO).
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(b'{"pids": {"limit": 44}}')
        ours.shutdown(socket.SHUT_WR)
        engine("update", "--resources", "-", cid, stdin=theirs.fileno(), check=True)
    assert (own_cgroup("pids") / "engine" / cid / "pids.max").read_text().strip() == "44"
    assert engine("update", cid).returncode != 0
