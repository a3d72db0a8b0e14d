"""What one more container costs with N already there (root): `.venv/bin/python bench/scale_probe.py [--n 1000]`.

bench/scale.py's sequential row says whether `run -d` slows down as containers pile up; this says where. Both
runtimes' probes (`run -d` of a `sleep` container, then `delete --force` of it), interleaved, in four phases:

  empty   no other container (engine's root holds one, so that its exit monitor stays up as in the other phases)
  runc-N  N runc containers running: engine's probes see the kernel's growth only (its root holds one container)
  engine-N  the runc ones deleted, N engine containers running: engine's probes see the kernel's growth (the same
          number of the same containers) plus whatever engine does per container it already has
  after   the N engine containers deleted again: `empty` once more, later. The machine (others' load on the same
          cores) drifts over the minutes a phase takes; a growth that `after` shares with `engine-N` is the drift's

So `engine-N` against `runc-N`, for engine's probes, is engine's own per-N cost; `runc-N` against `empty` is the
kernel's, which runc's probes pay too. Each probe also reports the CPU of `run -d` and its intermediate child
(wait4's rusage) and of engine's exit monitor over the phase (its /proc stat).

--strace DIR writes `strace -f -ttt -T` of one more probe per runtime and phase there, and prints the syscalls
whose summed time grew most between phases.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.runtimes import (  # noqa: E402
    BenchError,
    Runtime,
    copy_rootfs,
    reap_all,
    reap_strays,
    scratch,
    set_child_subreaper,
    write_bundle,
)
from bench.stats import median  # noqa: E402

PHASES = ("empty", "runc-N", "engine-N", "after")


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and the children it reaped)."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        begin = time.perf_counter()
        pid = os.posix_spawn(
            argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1)]
        )
        # Reaping every child that exits meanwhile, as conmon or containerd-shim reaps its container's init: a
        # killed init left a zombie makes `runc delete --force` wait ~100 ms for it to go.
        while True:
            done, status, usage = os.wait4(-1, 0)
            if done == pid:
                break
        wall = time.perf_counter() - begin
    finally:
        os.close(null)
    if os.waitstatus_to_exitcode(status) != 0:
        raise BenchError(f"{' '.join(argv)}: exit {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_utime + usage.ru_stime


def traced(out: Path, argv: list[str]) -> None:
    """strace -f of a command, until the command itself exits: strace would otherwise follow the container's
    init for as long as it runs. A tracer that dies leaves its tracees running, detached (strace waits on
    SIGINT for the processes it started itself)."""
    tracer = subprocess.Popen(
        ["strace", "-f", "-y", "-ttt", "-T", "-o", str(out), *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            lines = out.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            continue
        if lines and any(line.startswith(lines[0].split()[0] + " ") and "+++ exited" in line for line in lines):
            break
    tracer.kill()
    tracer.wait()


def monitor_pids(root: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"state.monitor" in cmdline and str(root).encode() in cmdline:
            found.append(int(entry))
    return found


def cpu_of(pids: list[int]) -> float:
    """Seconds on CPU so far (/proc/<pid>/schedstat: nanoseconds, where stat's ticks are 10 ms)."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except OSError:
            continue
    return total / 1e9


class Probe:
    def __init__(self, engine: Runtime, runc: Runtime, bundle: Path, strace_dir: Path | None) -> None:
        self.engine, self.runc, self.bundle, self.strace_dir = engine, runc, bundle, strace_dir
        self.samples: dict[tuple[str, str, str], list[float]] = defaultdict(list)  # (phase, runtime, what)
        self.count = 0
        self.traced_probes = 1
        self.kernel_samples = 20
        self.sched_dir: Path | None = None
        self.sched_probes = 10

    def sched_phase(self, name: str) -> None:
        """perf's fork/exec/exit tracepoints over engine's probes (no strace: the processes run at full speed),
        kept for sched_growth."""
        from bench.sched_trace import SchedRecorder

        assert self.sched_dir is not None
        with SchedRecorder(self.sched_dir / f"{name}.perf") as recorder:
            for _ in range(self.sched_probes):
                self.count += 1
                container_id = self.engine.cid(f"probe-{self.count}")
                recorder.mark()
                timed(self.engine.argv("run", "-d", "--bundle", str(self.bundle), container_id))
                recorder.done()
                self.engine("delete", "--force", container_id)
                reap_strays()

    def fill(self, rt: Runtime, n: int, prefix: str) -> None:
        for i in range(n):
            rt("run", "-d", "--bundle", str(self.bundle), rt.cid(f"{prefix}-{i}"))

    def empty(self, rt: Runtime, prefix: str) -> None:
        for container_id in rt.ids():
            if container_id.startswith(rt.cid(prefix)):
                rt("delete", "--force", container_id)

    def phase(self, name: str, rounds: int) -> None:
        from bench.kernel_ops import kernel_ops

        if self.kernel_samples:
            for step, values in kernel_ops(self.bundle.parent, self.kernel_samples).items():
                self.samples[(name, "kernel", step)] = values
        monitors = monitor_pids(self.engine.root)
        monitor_before = cpu_of(monitors)
        for i in range(rounds):
            for rt in (self.engine, self.runc) if i % 2 == 0 else (self.runc, self.engine):
                self.count += 1
                container_id = rt.cid(f"probe-{self.count}")
                wall, cpu = timed(rt.argv("run", "-d", "--bundle", str(self.bundle), container_id))
                self.samples[(name, rt.name, "run -d")].append(wall)
                self.samples[(name, rt.name, "run -d CPU")].append(cpu)
                wall, _ = timed(rt.argv("delete", "--force", container_id))
                self.samples[(name, rt.name, "delete --force")].append(wall)
                reap_strays()
            # The interpreter's own start beside each pair: how much of a probe's growth is the machine's
            wall, _ = timed([sys.executable, "-S", "-I", "-c", "pass"])
            self.samples[(name, "floor", "python -S -I -c pass")].append(wall)
        if monitors:
            self.samples[(name, "engine", "monitor CPU per probe")].append(
                (cpu_of(monitors) - monitor_before) / max(rounds, 1)
            )
        if self.sched_dir is not None:
            self.sched_phase(name)
        if self.strace_dir is not None:
            for k in range(self.traced_probes):
                for rt in (self.engine, self.runc):
                    self.count += 1
                    container_id = rt.cid(f"probe-{self.count}")
                    out = self.strace_dir / f"{name}.{rt.name}.{k}.strace"
                    traced(out, rt.argv("run", "-d", "--bundle", str(self.bundle), container_id))
                    rt("delete", "--force", container_id)
                    reap_strays()

    def report(self) -> str:
        lines = ["| runtime | what | " + " | ".join(PHASES) + " |", "|---|---|" + "--:|" * len(PHASES)]
        whats = ("run -d", "run -d CPU", "delete --force", "monitor CPU per probe", "python -S -I -c pass")
        for rt in ("engine", "runc", "floor"):
            for what in whats:
                cells = [self.samples.get((phase, rt, what)) for phase in PHASES]
                if not any(cells):
                    continue
                text = [f"{median(c) * 1000:.1f} ms" if c else "" for c in cells]
                lines.append(f"| {rt} | {what} | " + " | ".join(text) + " |")
        from bench.kernel_ops import STEPS

        lines += ["", "The kernel's steps alone (bench/kernel_ops.py, medians):", ""]
        lines += ["| step | " + " | ".join(PHASES) + " |", "|---|" + "--:|" * len(PHASES)]
        for step in STEPS:
            cells = [self.samples.get((phase, "kernel", step)) for phase in PHASES]
            if any(cells):
                text = [f"{median(c) * 1000:.3f} ms" if c else "" for c in cells]
                lines.append(f"| {step} | " + " | ".join(text) + " |")
        return "\n".join(lines)


def syscall_key(name: str, args: str) -> str:
    """The syscall, with what tells apart the calls that may scale differently: a mount's filesystem type, and
    whether a mkdir, write or rmdir is in a cgroup."""
    if name == "mount":
        parts = args.split(", ")
        return f"mount {parts[2].strip(chr(34))}" if len(parts) > 2 else name
    if name == "fsopen":
        return f"fsopen {args.split(',')[0].strip(chr(34))}"
    if name in ("mkdir", "mkdirat", "write", "rmdir", "openat") and "/sys/fs/cgroup" in args:
        return f"{name} cgroup"
    if name in ("clone", "clone3", "unshare"):
        flags = [f for f in ("CLONE_NEWNET", "CLONE_NEWNS", "CLONE_NEWPID", "CLONE_NEWIPC") if f in args]
        return f"{name} {'|'.join(f.removeprefix('CLONE_') for f in flags)}".strip()
    return name


def strace_calls(path: Path) -> list[tuple[str, float, float]]:
    """(key, start offset from the first line, duration) of every completed syscall, in order of start."""
    calls: list[tuple[str, float, float]] = []
    pending: dict[str, tuple[str, float]] = {}
    first = None
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3:
            continue
        pid, when, rest = parts[0], float(parts[1]), parts[2]
        first = when if first is None else first
        if rest.endswith("<unfinished ...>"):
            name, _, args = rest.partition("(")
            pending[pid] = (syscall_key(name, args), when - first)
            continue
        if rest.startswith("<... "):
            key, start = pending.pop(pid, (rest[5:].split(" ", 1)[0], when - first))
        elif "(" in rest:
            name, _, args = rest.partition("(")
            key, start = syscall_key(name, args), when - first
        else:
            continue
        duration = rest[rest.rfind("<") + 1 : -1] if rest.endswith(">") else ""
        if duration.replace(".", "", 1).isdigit():
            calls.append((key, start, float(duration)))
        elif "+++ exited" in rest:
            calls.append(("exit", when - first, 0.0))
    calls.sort(key=lambda call: call[1])
    return calls


def per_key(calls: list[tuple[str, float, float]]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for key, _, duration in calls:
        totals[key] += duration
    return totals


def strace_growth(directory: Path, phases: list[str]) -> str:
    """Per runtime: the syscalls whose summed time grew most from the first phase to each later one (medians over
    the traced probes), and when the command's last process exited."""
    lines = []
    for rt in ("engine", "runc"):
        by_phase: dict[str, list[list[tuple[str, float, float]]]] = {}
        for phase in phases:
            traces = sorted(directory.glob(f"{phase}.{rt}.*.strace"))
            if traces:
                by_phase[phase] = [strace_calls(t) for t in traces]
        if len(by_phase) < 2:
            continue
        totals = {
            phase: {
                key: median([per_key(calls).get(key, 0.0) for calls in traces])
                for key in {k for calls in traces for k, _, _ in calls}
            }
            for phase, traces in by_phase.items()
        }
        base_phase, *later = list(by_phase)
        base = totals[base_phase]
        for phase in later:
            grown = totals[phase]
            deltas = sorted(((grown[k] - base.get(k, 0.0), k) for k in grown), reverse=True)[:10]
            top = ", ".join(f"{k} {base.get(k, 0) * 1000:.2f}->{grown[k] * 1000:.2f}" for _, k in deltas)
            lines.append(f"{rt} {base_phase} -> {phase} (ms, median of {len(by_phase[phase])}): {top}")
        for phase, traces in by_phase.items():
            ends = [max((start for key, start, _ in calls if key == "exit"), default=0.0) for calls in traces]
            lines.append(f"{rt} {phase}: last exit at {median(ends) * 1000:.1f} ms (strace -f slows everything)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default=str(Path(sys.executable).with_name("engine")), help="engine binary")
    parser.add_argument("--runc", default="/usr/sbin/runc", help="runc binary")
    parser.add_argument("--rootfs", type=Path, default=REPO / ".cache" / "rootfs", help="busybox rootfs")
    parser.add_argument("--n", type=int, default=1000, help="containers already running (1000)")
    parser.add_argument("--rounds", type=int, default=30, help="probes per runtime and phase (30)")
    parser.add_argument(
        "--strace", type=Path, metavar="DIR", help="also strace probes (--traced) per runtime and phase"
    )
    parser.add_argument("--kernel", type=int, default=20, help="bench/kernel_ops.py samples per phase (20)")
    parser.add_argument("--traced", type=int, default=5, help="probes traced per runtime and phase with --strace (5)")
    parser.add_argument(
        "--sched",
        type=Path,
        metavar="DIR",
        help="also record fork/exec/exit of engine's probes with perf (--sched-probes)",
    )
    parser.add_argument("--sched-probes", type=int, default=10, help="probes recorded per phase with --sched (10)")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"which phases, in this order ({','.join(PHASES)})")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/scale_probe.py: needs root", file=sys.stderr)
        return 1
    if args.strace is not None:
        args.strace.mkdir(parents=True, exist_ok=True)
    set_child_subreaper()
    try:
        with scratch(keep=False) as work:
            rootfs = copy_rootfs(args.rootfs, work / "rootfs")
            from engine import SPEC_VERSION

            bundle = write_bundle(work / "sleep", ["sleep", "600"], rootfs, SPEC_VERSION)
            engine = Runtime("engine", args.engine, work / "engine-root", "e-")
            runc = Runtime("runc", args.runc, work / "runc-root", "r-")
            probe = Probe(engine, runc, bundle, args.strace)
            probe.traced_probes = args.traced
            probe.kernel_samples = args.kernel
            if args.sched is not None:
                args.sched.mkdir(parents=True, exist_ok=True)
                probe.sched_dir, probe.sched_probes = args.sched, args.sched_probes
            try:
                probe.fill(engine, 1, "keep")
                phases = args.phases.split(",")
                if "empty" in phases:
                    print("probe: empty", file=sys.stderr)
                    probe.phase("empty", args.rounds)
                if "runc-N" in phases:
                    print(f"probe: {args.n} runc containers", file=sys.stderr)
                    probe.fill(runc, args.n, "bg")
                    probe.phase("runc-N", args.rounds)
                    probe.empty(runc, "bg")
                if "engine-N" in phases:
                    print(f"probe: {args.n} engine containers", file=sys.stderr)
                    probe.fill(engine, args.n - 1, "bg")
                    probe.phase("engine-N", args.rounds)
                if "after" in phases:
                    print("probe: after (the N containers deleted)", file=sys.stderr)
                    probe.empty(engine, "bg")
                    probe.empty(runc, "bg")
                    probe.phase("after", args.rounds)
            finally:
                for rt in (engine, runc):
                    rt.cleanup()
                reap_strays()
    finally:
        reap_all(timeout=5.0)
    print(f"N={args.n}, {args.rounds} probes per runtime and phase, load {os.getloadavg()[0]:.1f}")
    print(probe.report())
    if args.strace is not None:
        print(strace_growth(args.strace, args.phases.split(",")))
    if args.sched is not None:
        from bench.sched_trace import sched_growth

        print(sched_growth(args.sched, args.phases.split(",")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
