"""When each process of a `run -d` forks, execs and exits, from perf's sched tracepoints (no strace: the processes
run at full speed), so that phases of scale_probe.py can be compared event by event.

Each probed command's process tree is named by role: `run` is the command, `run.1` its first child (create's
intermediate), `run.1.1` that one's first child (the container's init), and so on. For every event (`run.1 fork`,
`run.1.1 exec sleep`, `run exit`) the offset from the command's own fork is kept; sched_growth prints the medians per
phase and what grew between the first phase and each later one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

from bench.stats import median

EVENTS = "sched:sched_process_fork,sched:sched_process_exec,sched:sched_process_exit"
LINE = re.compile(r"^\s*(?P<pid>\d+)\s+(?P<time>[\d.]+):\s+sched:(?P<event>\w+):\s+(?P<args>.*)$")


class SchedRecorder:
    """perf record of the tracepoints, system wide, on CLOCK_MONOTONIC so that mark()'s windows line up."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.windows: list[float] = []
        self.perf: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SchedRecorder:
        self.perf = subprocess.Popen(
            ["perf", "record", "-q", "-k", "CLOCK_MONOTONIC", "-a", "-e", EVENTS, "-o", str(self.out)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # perf opens its events before the first probe
        return self

    def mark(self) -> None:
        """The next fork of this process starts a probe."""
        self.windows.append(time.clock_gettime(time.CLOCK_MONOTONIC))

    def done(self) -> None:
        """The probed command returned: later events (the container's, the delete's) are not its."""
        self.windows.append(time.clock_gettime(time.CLOCK_MONOTONIC))

    def __exit__(self, *exc: object) -> None:
        assert self.perf is not None
        time.sleep(0.2)
        self.perf.send_signal(signal.SIGINT)
        self.perf.wait(timeout=30)
        self.out.with_suffix(".marks").write_text(f"{os.getpid()}\n" + "\n".join(f"{w:.6f}" for w in self.windows))


def perf_script(perf_data: Path) -> str:
    return subprocess.run(
        ["perf", "script", "-i", str(perf_data), "-F", "pid,time,event,trace"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def parse(text: str) -> list[tuple[float, str, int, dict[str, str]]]:
    """perf script's lines -> (time, fork/exec/exit, thread id, the tracepoint's fields, with "tgid": perf's own
    pid column, the process's)."""
    events = []
    for line in text.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        fields = dict(re.findall(r"(\w+)=(\S+)", match["args"]))
        # The tracepoint's own pid= is the thread's id (perf's pid column is the process's)
        tid = int(fields.get("pid", match["pid"]))
        fields["tgid"] = match["pid"]
        events.append((float(match["time"]), match["event"].removeprefix("sched_process_"), tid, fields))
    return events


def probes(perf_data: Path) -> list[dict[str, float]]:
    return probes_of(perf_script(perf_data), perf_data.with_suffix(".marks").read_text())


def probes_of(script: str, marks_text: str) -> list[dict[str, float]]:
    """Per probe (a window of the marks: the bench's pid, then start and end times): event label -> seconds after
    the command's fork."""
    marks = marks_text.split()
    bench_pid, times = int(marks[0]), [float(m) for m in marks[1:]]
    events = parse(script)
    result = []
    for start, end in zip(times[0::2], times[1::2], strict=False):
        window = [e for e in events if start <= e[0] < end]
        roots = [e for e in window if e[1] == "fork" and int(e[3]["tgid"]) == bench_pid]
        if not roots:
            continue
        t0, root_pid = roots[0][0], int(roots[0][3]["child_pid"])
        roles = {root_pid: "run"}
        children: dict[int, int] = defaultdict(int)
        seen: dict[str, int] = defaultdict(int)
        offsets: dict[str, float] = {}
        for when, kind, pid, fields in window:
            if when < t0:
                continue
            if kind == "fork":
                parent = int(fields.get("pid", -1))
                if parent not in roles:
                    continue
                children[parent] += 1
                child = int(fields["child_pid"])
                roles[child] = f"{roles[parent]}.{children[parent]}"
                label = f"{roles[child]} forked"
            elif kind == "exec":
                if pid not in roles:
                    continue
                label = f"{roles[pid]} exec {Path(fields.get('filename', '?')).name}"
            else:
                if pid not in roles:
                    continue
                label = f"{roles[pid]} exit"
            seen[label] += 1
            if seen[label] > 1:
                label += f" #{seen[label]}"
            offsets[label] = when - t0
        result.append(offsets)
    return result


def sched_growth(directory: Path, phases: list[str]) -> str:
    per_phase = {}
    for phase in phases:
        data = directory / f"{phase}.perf"
        if data.exists():
            per_phase[phase] = probes(data)
    if not per_phase:
        return ""
    names = list(per_phase)
    base = per_phase[names[0]]
    labels = [
        label for label in base[0] if all(sum(label in p for p in runs) * 2 > len(runs) for runs in per_phase.values())
    ]
    labels.sort(key=lambda label: median([p[label] for p in base if label in p]))
    lines = [
        "engine `run -d`, each process's fork/exec/exit after the command's fork "
        " (perf sched tracepoints, medians, ms):",
        "",
        "| event | " + " | ".join(names) + " | " + " | ".join(f"{n} - {names[0]}" for n in names[1:]) + " |",
        "|---|" + "--:|" * (2 * len(names) - 1),
    ]
    for label in labels:
        values = [median([p[label] for p in runs if label in p]) * 1000 for runs in per_phase.values()]
        deltas = [v - values[0] for v in values[1:]]
        lines.append(
            f"| {label} | "
            + " | ".join(f"{v:.2f}" for v in values)
            + " | "
            + " | ".join(f"{d:+.2f}" for d in deltas)
            + " |"
        )
    return "\n".join(lines)
