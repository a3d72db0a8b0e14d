"""engine/cgroups/attach_warmup.py for real (root): the no-op write create starts goes to its own cgroup and moves
nothing, and it makes the next cgroup.procs write skip the RCU grace period."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest

from engine.cgroups import attach_warmup

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="writes cgroup.procs: needs root")


def test_the_file_is_our_own_cgroups_and_the_write_moves_nothing() -> None:
    path = attach_warmup.own_procs_file()
    assert path is not None, "no cgroup mount found on this host"
    assert str(os.getpid()) in Path(path).read_text().split(), f"{path} is not our cgroup's"
    before = Path("/proc/self/cgroup").read_text()
    attach_warmup.start()
    time.sleep(0.1)  # its thread's write is done
    assert Path("/proc/self/cgroup").read_text() == before


def test_the_write_after_it_skips_the_grace_period(tmp_path: Path) -> None:
    # A child moved into a scratch cgroup of ours, cold (after a quiet spell) and 15 ms after start(). The grace
    # period is 5-15 ms here; the warmed write ~0.2 ms. Medians of 5, and only "faster by half": load varies.
    path = attach_warmup.own_procs_file()
    assert path is not None
    scratch = Path(path).parent / f"engine-warmup-test-{os.getpid()}"
    scratch.mkdir()
    cold, warm = [], []
    try:
        for _ in range(5):
            for samples, warmed in ((cold, False), (warm, True)):
                time.sleep(0.15)  # let the kernel's switch lapse
                pid = os.fork()
                if pid == 0:
                    time.sleep(5)
                    os._exit(0)
                try:
                    if warmed:
                        attach_warmup.start()
                        time.sleep(0.015)
                    start = time.perf_counter()
                    (scratch / "cgroup.procs").write_text(str(pid))
                    samples.append(time.perf_counter() - start)
                finally:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
    finally:
        time.sleep(0.05)
        scratch.rmdir()
    assert statistics.median(warm) < statistics.median(cold) / 2, (cold, warm)
