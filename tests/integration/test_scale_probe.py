"""bench/scale_probe.py and bench/kernel_ops.py run end to end with tiny counts: the tools that say what grows with
the number of containers keep working, and leave nothing behind (containers, cgroups, the scratch mount).

The numbers mean nothing at these counts; the report's shape and the clean-up are checked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def kernel_ops_cgroups() -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").glob("**/engine/kernel-ops-*") if p.is_dir()]


def bench_mounts() -> set[str]:
    """The benches' scratch tmpfs mounts (another bench may be running: only a new one counts)."""
    return {
        line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines() if "engine-bench-" in line
    }


def test_scale_probe_reports_every_phase_and_cleans_up() -> None:
    before, mounts = set(kernel_ops_cgroups()), bench_mounts()
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "scale_probe.py"), "--n", "2", "--rounds", "1", "--kernel", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "| runtime | what | empty | runc-N | engine-N | after |" in out
    for row in ("| engine | run -d |", "| engine | monitor CPU per probe |", "| runc | delete --force |", "| floor |"):
        assert row in out
    for step in (
        "| mount cgroup (all v1) |",
        "| bind cgroup (all v1) |",
        "| mount sysfs |",
        "| mkdir cgroup (all) |",
        "| write cpuset.cpus+mems |",
    ):
        assert step in out
    assert set(kernel_ops_cgroups()) == before, "kernel_ops left cgroups behind"
    assert bench_mounts() <= mounts, "the scratch tmpfs is still mounted"
