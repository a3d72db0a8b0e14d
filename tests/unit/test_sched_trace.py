"""bench/sched_trace.py: perf's fork/exec/exit lines of a probe named by role (the command, its children by order
of fork, their children), offsets from the command's fork, and nothing outside the probe's window or tree."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.sched_trace import probes_of

SCRIPT = """\
   100 10.000000: sched:sched_process_fork: comm=python pid=100 child_comm=python child_pid=200
   999 10.000500: sched:sched_process_fork: comm=other pid=999 child_comm=other child_pid=998
   200 10.001000: sched:sched_process_exec: filename=/x/.venv/bin/engine pid=200 old_pid=200
   200 10.010000: sched:sched_process_fork: comm=engine pid=200 child_comm=engine child_pid=201
   200 10.011000: sched:sched_process_fork: comm=engine pid=200 child_comm=engine child_pid=202
   200 10.012000: sched:sched_process_exit: comm=engine pid=201 prio=120 group_dead=false
   202 10.015000: sched:sched_process_fork: comm=engine pid=202 child_comm=engine child_pid=203
   202 10.016000: sched:sched_process_exit: comm=engine pid=202 prio=120 group_dead=true
   203 10.020000: sched:sched_process_exec: filename=/dev/fd/3 pid=203 old_pid=203
   203 10.025000: sched:sched_process_exec: filename=/bin/sleep pid=203 old_pid=203
   200 10.030000: sched:sched_process_exit: comm=engine pid=200 prio=120 group_dead=true
   203 10.050000: sched:sched_process_exit: comm=sleep pid=203 prio=120 group_dead=true
"""


def test_roles_and_offsets_within_the_window() -> None:
    (probe,) = probes_of(SCRIPT, "100\n9.999\n10.040")
    expected = {
        "run exec engine": 0.001,
        "run.1 forked": 0.010,
        "run.2 forked": 0.011,
        "run.1 exit": 0.012,
        "run.2.1 forked": 0.015,
        "run.2 exit": 0.016,
        "run.2.1 exec 3": 0.020,
        "run.2.1 exec sleep": 0.025,
        "run exit": 0.030,
    }
    assert probe.keys() == expected.keys()
    assert all(abs(probe[k] - v) < 1e-6 for k, v in expected.items())


def test_a_window_without_the_bench_fork_is_no_probe() -> None:
    assert probes_of(SCRIPT, "100\n10.0001\n10.040") == []
