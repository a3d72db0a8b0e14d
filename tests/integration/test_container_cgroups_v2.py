"""Containers on a pure cgroup v2 host: limits in the unified hierarchy, pause/resume through cgroup.freeze,
and the device allowlist as an eBPF program, seen from inside the container.

This machine is hybrid, so these run inside the qemu guest of tests/cgroup2-guest (a pure cgroup v2 kernel):
set ENGINE_CGROUP2_GUEST=1 (CI does) and test_in_the_cgroup2_guest boots it and runs this file there.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests import host
from tests.conftest import GUEST_LANE_SKIP, expect_guest_outcomes
from tests.integration.conftest import Engine
from tests.integration.test_container_cgroups import check_pause_and_resume
from tests.integration.test_lifecycle import wait_for

REPO = Path(__file__).resolve().parents[2]
# These run under qemu's software emulation, where one `engine run` takes 5-10 s on a quiet machine and was seen
# taking 45-80 s (main's as well as this branch's) while the host was loaded: a hang guard, not a speed bound.
SLOW = 240
PURE_V2 = host.cgroup_layout() == "v2"
on_v2 = pytest.mark.skipif(
    not PURE_V2, reason=f"needs a pure cgroup v2 host: {host.describe_layout()} (the qemu guest lane runs these)"
)


def call(engine: Engine, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return engine(*args, timeout=SLOW, **kw)


def state(engine: Engine, cid: str) -> dict[str, Any]:
    return json.loads(call(engine, "state", cid, check=True).stdout)


def bundle_with(engine: Engine, args: list[str], resources: dict) -> Path:
    bundle = engine.bundle(args)
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["resources"] = resources
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


@on_v2
def test_limits_and_devices_inside_the_container(engine: Engine) -> None:
    script = (
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; echo x > /dev/null && echo null-ok; "
        "mknod /tmp/loop0 b 7 0 2>/dev/null; head -c1 /tmp/loop0 >/dev/null 2>&1 || echo loop-denied"
    )
    bundle = bundle_with(
        engine,
        ["sh", "-c", script],
        {"memory": {"limit": 32 * 1024 * 1024}, "pids": {"limit": 20}, "devices": [{"allow": False, "access": "rwm"}]},
    )
    config = json.loads((bundle / "config.json").read_text())
    config["root"]["readonly"] = False
    config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]})
    for key in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][key].append("CAP_MKNOD")
    (bundle / "config.json").write_text(json.dumps(config))
    out = call(engine, "run", "--bundle", str(bundle), engine.new_id(), check=True).stdout.split()
    assert out == [str(32 * 1024 * 1024), "20", "null-ok", "loop-denied"]


@on_v2
def test_pause_and_resume_with_cgroup_freeze(engine: Engine, tmp_path: Path) -> None:
    check_pause_and_resume(engine, tmp_path)  # cgroup.freeze and cgroup.events "frozen" on this host


def cgroup_dir(pid: int) -> Path:
    return Path("/sys/fs/cgroup") / Path(f"/proc/{pid}/cgroup").read_text().strip().split("::", 1)[1].lstrip("/")


@on_v2
def test_kill_all_through_cgroup_kill_and_delete_force_without_state(engine: Engine) -> None:
    """kill --all KILL writes cgroup.kill: a shell forking as fast as it can, with no pid namespace to hold it
    together, leaves nothing behind. delete --force of a container whose state.json is garbage still finds its
    cgroup (the default engine/<id>), kills what is in it and removes it."""
    # (busybox sh exits when a fork fails: the pids limit is a safety net far above what the test reaches.)
    storm = engine.bundle(["sh", "-c", "while :; do sleep 30 & sleep 0.05; done"], name="storm")
    config = json.loads((storm / "config.json").read_text())
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"]
    config["linux"]["resources"] = {"pids": {"limit": 1000}}
    (storm / "config.json").write_text(json.dumps(config))
    cid = engine.new_id()
    call(engine, "run", "--detach", "--bundle", str(storm), cid, check=True)
    procs = cgroup_dir(state(engine, cid)["pid"]) / "cgroup.procs"
    assert wait_for(lambda: len(procs.read_text().split()) > 20)
    call(engine, "kill", "--all", cid, "KILL", check=True)
    assert wait_for(lambda: procs.read_text().split() == [], timeout=10), procs.read_text()
    call(engine, "delete", cid, check=True)

    cid = engine.new_id()
    call(engine, "run", "--detach", "--bundle", str(engine.bundle(["sleep", "3600"], name="plain")), cid, check=True)
    init = state(engine, cid)["pid"]
    directory = cgroup_dir(init)
    (engine.root / cid / "state.json").write_text("this is not JSON")
    result = call(engine, "delete", "--force", cid)
    assert result.returncode == 0, result.stderr
    assert wait_for(lambda: not Path(f"/proc/{init}").exists(), timeout=10)
    assert not directory.exists() and not (engine.root / cid).exists()


@on_v2
def test_exec_cgroup_on_v2(engine: Engine) -> None:
    """exec --cgroup PATH joins a sub-cgroup; a controller form is refused on v2, as is "..". When the init
    moved to a sub-cgroup and a domain controller is enabled below the container's cgroup (which then may not
    hold processes), a plain exec joins the init's cgroup, as runc's does, and --cgroup / fails."""
    cid = engine.new_id()
    call(engine, "run", "--detach", "--bundle", str(engine.bundle(["sleep", "3600"])), cid, check=True)
    init = state(engine, cid)["pid"]
    top = cgroup_dir(init)
    (top / "sub").mkdir()
    out = call(engine, "exec", "--cgroup", "sub", cid, "cat", "/proc/self/cgroup", check=True).stdout
    assert out == "0::/sub\n"
    assert call(engine, "exec", "--cgroup", "memory:sub", cid, "true").returncode == 255  # v2: the path alone
    (top / "init").mkdir()
    (top / "init" / "cgroup.procs").write_text(str(init))
    (top / "cgroup.subtree_control").write_text("+memory")
    out = call(engine, "exec", cid, "cat", "/proc/self/cgroup", check=True).stdout
    assert out == "0::/init\n"
    busy = call(engine, "exec", "--cgroup", "/", cid, "true")
    assert busy.returncode == 255 and "Device or resource busy" in busy.stderr
    call(engine, "delete", "--force", cid, check=True)
    assert not top.exists()


@GUEST_LANE_SKIP
def test_in_the_cgroup2_guest() -> None:
    """This file in the pure cgroup v2 guest: every test but this one must pass there."""
    expect_guest_outcomes(Path(__file__), lambda name: name != "test_in_the_cgroup2_guest")
