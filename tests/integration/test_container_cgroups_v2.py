"""Containers on a pure cgroup v2 host: limits in the unified hierarchy, pause/resume through cgroup.freeze,
and the device allowlist as an eBPF program, seen from inside the container.

This machine is hybrid, so these run inside the qemu guest of tests/cgroup2-guest (a pure cgroup v2 kernel):
set ENGINE_CGROUP2_GUEST=1 (CI does) and test_in_the_cgroup2_guest boots it and runs this file there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import host
from tests.conftest import GUEST_LANE_SKIP, expect_guest_outcomes
from tests.integration.conftest import Engine
from tests.integration.test_container_cgroups import check_pause_and_resume

REPO = Path(__file__).resolve().parents[2]
PURE_V2 = host.cgroup_layout() == "v2"
on_v2 = pytest.mark.skipif(
    not PURE_V2, reason=f"needs a pure cgroup v2 host: {host.describe_layout()} (the qemu guest lane runs these)"
)


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
    out = engine("run", "--bundle", str(bundle), engine.new_id(), check=True).stdout.split()
    assert out == [str(32 * 1024 * 1024), "20", "null-ok", "loop-denied"]


@on_v2
def test_pause_and_resume_with_cgroup_freeze(engine: Engine, tmp_path: Path) -> None:
    check_pause_and_resume(engine, tmp_path)  # cgroup.freeze and cgroup.events "frozen" on this host


@GUEST_LANE_SKIP
def test_in_the_cgroup2_guest() -> None:
    """This file in the pure cgroup v2 guest: every test but this one must pass there."""
    expect_guest_outcomes(Path(__file__), lambda name: name != "test_in_the_cgroup2_guest")
