"""engine vs runc, side by side, on one bundle: `.venv/bin/python bench/run.py [--runs N] [--write-readme]` (root).

Every operation is timed as the wall time of the whole command, as a caller (conmon, containerd-shim, a shell)
sees it. The two runtimes are interleaved operation by operation, and which one goes first alternates by
round, so the noise of this shared 2-core machine falls on both alike; we report medians and p10-p90.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Run as a script, sys.path[0] is bench/ itself: make `bench` (and the repo's engine) importable.
sys.path.insert(0, str(REPO))

from bench import report  # noqa: E402
from bench.stats import Summary, median  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36
# If runc refuses engine's ociVersion, both runtimes get this one (runc 1.1.5 reports spec 1.0.2-dev).
FALLBACK_OCI_VERSION = "1.0.2-dev"
LIFECYCLE = ("create", "state", "start", "kill", "delete")
LABELS = {
    "run": "`run` of /bin/true (incl. its delete)",
    "create": "`create` (sleep 600)",
    "state": "`state` (created)",
    "start": "`start`",
    "kill": "`kill KILL`",
    "delete": "`delete` (stopped)",
    "lifecycle": "create+state+start+kill+delete",
    "list": "`list`",
}
PROFILED = ("create", "state", "start", "kill", "delete")


class BenchError(Exception):
    pass


@dataclass
class Profiled:
    """One `python -X importtime` run of an engine command: its imports and its wall time (seconds)."""

    entries: list[report.ImportEntry]
    seconds: float


@dataclass
class Result:
    seconds: float
    returncode: int
    stdout: str
    stderr: str


def execute(argv: list[str], *, capture: bool = False, env: dict[str, str] | None = None) -> Result:
    """Run a command and time it. stdout goes to /dev/null unless captured: a created container's init
    inherits the runtime's stdio and would hold a pipe open forever. stderr goes to a file for the same
    reason; the file is opened before the clock starts so that only the command itself is timed."""
    with tempfile.TemporaryFile() as err:
        stdout = subprocess.PIPE if capture else subprocess.DEVNULL
        begin = time.perf_counter()
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err, env=env, check=False)
        seconds = time.perf_counter() - begin
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    out = proc.stdout.decode(errors="replace") if capture else ""
    return Result(seconds, proc.returncode, out, stderr)


@dataclass
class Runtime:
    name: str
    binary: str
    root: Path

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.root), *args]

    def __call__(self, *args: str, capture: bool = False, check: bool = True) -> Result:
        result = execute(self.argv(*args), capture=capture)
        if check and result.returncode != 0:
            raise BenchError(f"{self.name} {' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}")
        return result

    def exists(self, container_id: str) -> bool:
        # Both keep one directory per container under --root; looking is cheaper than a `state` command.
        return (self.root / container_id).exists()

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))


# ---- setup --------------------------------------------------------------------------------------------------


def set_child_subreaper() -> None:
    """Become the subreaper, as conmon and containerd-shim are: the created inits re-parent to us, so after
    `kill` we can wait for the exit (and reap it) the way a real caller does."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def compile_engine(python: str) -> None:
    """PYTHONDONTWRITEBYTECODE=1 is set here, so nothing would ever write engine's .pyc files and every
    command would compile engine from source. Installed packages ship compiled; so must the engine we time."""
    subprocess.run([python, "-m", "compileall", "-q", "engine", "state", "hooks"], cwd=REPO, check=True)


def interpreter_of(script: str) -> str:
    """The Python of a console script (its #! line), so profiling runs exactly what `engine` runs."""
    with open(script, "rb") as f:
        first = f.readline().decode(errors="replace").strip()
    return first[2:].strip() if first.startswith("#!") else sys.executable


def ensure_rootfs(rootfs: Path) -> None:
    if not (rootfs / "bin" / "busybox").exists():
        subprocess.run([str(REPO / "tests" / "make-rootfs.sh"), str(rootfs)], check=True)


def copy_rootfs(source: Path, dest: Path, attempts: int = 3) -> Path:
    """cp -a (symlinks, modes, any device nodes as they are); retried, since a rebuild of the shared rootfs
    by someone else may be swapping it in at this very moment."""
    for attempt in range(attempts):
        ensure_rootfs(source)
        shutil.rmtree(dest, ignore_errors=True)
        if subprocess.run(["cp", "-a", str(source), str(dest)], check=False).returncode == 0:
            return dest
        if attempt < attempts - 1:
            time.sleep(1)
    raise BenchError(f"could not copy the rootfs {source}")


def write_bundle(directory: Path, args: list[str], rootfs: Path, oci_version: str | None = None) -> Path:
    """`engine spec`'s default config (no terminal), the busybox rootfs read-only: one config for both."""
    from engine.spec.default import default_config

    directory.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = default_config(args, terminal=False)
    config["root"] = {"path": str(rootfs), "readonly": True}
    if oci_version is not None:
        config["ociVersion"] = oci_version
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Wait for a killed init to exit, and reap it if it is our child (we are the subreaper)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            # Not ours to reap (someone else's subreaper): gone or a zombie is stopped for both runtimes.
            try:
                stat = Path(f"/proc/{pid}/stat").read_bytes()
            except FileNotFoundError:
                return
            if stat[stat.rindex(b")") + 2 :].split()[0] in (b"Z", b"X"):
                return
        time.sleep(0.001)
    raise BenchError(f"pid {pid} did not exit within {timeout:.0f}s of SIGKILL")


def wait_for_load(limit: float, timeout: float) -> None:
    """Others run tests on this machine: starting when it is quieter gives tighter numbers (both runtimes
    still see the same noise either way). Gives up after `timeout` and measures anyway."""
    deadline = time.monotonic() + timeout
    while os.getloadavg()[0] >= limit and time.monotonic() < deadline:
        print(f"load average {os.getloadavg()[0]:.1f} >= {limit}: waiting", file=sys.stderr)
        time.sleep(15)


def reap_strays() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def reap_all(timeout: float) -> list[int]:
    """Wait for every orphan that re-parented to us to exit (engine's exit monitor, a daemon per --root,
    exits within a second of its root being removed); return the pids still alive after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.05)
        except ChildProcessError:
            return []
    try:
        return [int(p) for p in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()]
    except OSError:
        return [-1]  # still have children, cannot say which


# ---- measuring ----------------------------------------------------------------------------------------------

Samples = dict[str, dict[str, list[float]]]  # operation -> runtime name -> seconds


@dataclass
class Bench:
    engine: Runtime
    runc: Runtime
    run_bundle: Path
    sleep_bundle: Path
    workdir: Path
    python: str
    notes: list[str]

    def runtimes(self, round_index: int) -> tuple[Runtime, Runtime]:
        # Alternate who goes first: the second command of a pair finds caches warmer (page cache, dentries).
        return (self.engine, self.runc) if round_index % 2 == 0 else (self.runc, self.engine)

    def each(self, round_index: int, step: Callable[[Runtime], float | None], samples: Samples, op: str) -> None:
        for rt in self.runtimes(round_index):
            seconds = step(rt)
            if seconds is not None:
                samples[op][rt.name].append(seconds)

    def run_round(self, i: int, samples: Samples) -> None:
        run_id, life_id = f"bench-{i}-run", f"bench-{i}-life"
        pids: dict[str, int] = {}

        def run(rt: Runtime) -> float:
            seconds = rt("run", "--bundle", str(self.run_bundle), run_id).seconds
            if rt.exists(run_id):
                # runc run deletes its container unless --keep, and so does engine; if one did not, its
                # time would be missing the delete: say so rather than hide it.
                self.notes.append(f"{rt.name} run left {run_id} behind (deleted outside the timing)")
                rt("delete", "--force", run_id, check=False)
            return seconds

        def create(rt: Runtime) -> float:
            pid_file = self.workdir / f"{rt.name}-{i}.pid"
            seconds = rt("create", "--bundle", str(self.sleep_bundle), "--pid-file", str(pid_file), life_id).seconds
            pids[rt.name] = int(pid_file.read_text())
            return seconds

        def state(rt: Runtime) -> float:
            result = rt("state", life_id, capture=True)
            status = json.loads(result.stdout)["status"]
            if status != "created":
                raise BenchError(f"{rt.name} state {life_id}: {status}, expected created")
            return result.seconds

        def start(rt: Runtime) -> float:
            return rt("start", life_id).seconds

        def kill(rt: Runtime) -> float:
            return rt("kill", life_id, "KILL").seconds

        def delete(rt: Runtime) -> float:
            return rt("delete", life_id).seconds

        self.each(i, run, samples, "run")
        # The floor: the interpreter starting and exiting, which every engine command pays before its own work.
        samples["floor"]["engine"].append(execute([self.python, "-c", "pass"]).seconds)
        for op, step in (("create", create), ("state", state), ("start", start), ("kill", kill)):
            self.each(i, step, samples, op)
        for rt in self.runtimes(i):
            wait_gone(pids[rt.name])  # not timed: the exit is the kernel's work, not the runtime's
        self.each(i, delete, samples, "delete")
        for rt in (self.engine, self.runc):
            samples["lifecycle"][rt.name].append(sum(samples[op][rt.name][-1] for op in LIFECYCLE))

    def measure_list(self, count: int, runs: int, samples: Samples) -> None:
        """`list` with `count` created containers (not started: a blocked init each, nothing else running)."""
        ids = [f"bench-list-{n}" for n in range(count)]
        try:
            for n, container_id in enumerate(ids):
                for rt in self.runtimes(n):
                    rt("create", "--bundle", str(self.sleep_bundle), container_id)
            for i in range(runs):
                for rt in self.runtimes(i):
                    samples["list"][rt.name].append(rt("list").seconds)
        finally:
            for rt in (self.engine, self.runc):
                for container_id in ids:
                    if rt.exists(container_id):
                        rt("delete", "--force", container_id, check=False)
            reap_strays()

    def cleanup(self) -> None:
        for rt in (self.engine, self.runc):
            for container_id in rt.ids():
                rt("delete", "--force", container_id, check=False)
        reap_strays()


def probe_oci_version(bench: Bench, rootfs: Path) -> str:
    """Use engine's ociVersion if runc accepts it, else the fallback; both runtimes always get the same file."""
    from engine import SPEC_VERSION

    for version in (SPEC_VERSION, FALLBACK_OCI_VERSION):
        write_bundle(bench.run_bundle, ["true"], rootfs, version)
        write_bundle(bench.sleep_bundle, ["sleep", "600"], rootfs, version)
        result = bench.runc("run", "--bundle", str(bench.run_bundle), "bench-probe", check=False)
        if bench.runc.exists("bench-probe"):
            bench.runc("delete", "--force", "bench-probe", check=False)
        if result.returncode == 0:
            if version != SPEC_VERSION:
                bench.notes.append(f"runc 1.1.5 refused ociVersion {SPEC_VERSION}: both ran {version}")
            return version
    raise BenchError(f"runc refused both ociVersion {SPEC_VERSION} and {FALLBACK_OCI_VERSION}")


# ---- profiling ----------------------------------------------------------------------------------------------


def profile_once(bench: Bench, python: str, k: int, found: dict[str, list[Profiled]]) -> None:
    """`python -X importtime` of engine's lifecycle commands on one real container."""

    def profiled(command: str, *args: str) -> None:
        argv = [python, "-X", "importtime", *bench.engine.argv(command, *args)]
        result = execute(argv)
        if result.returncode != 0:
            raise BenchError(f"profiling engine {command}: exit {result.returncode}: {result.stderr[-2000:]}")
        found[command].append(Profiled(report.parse_importtime(result.stderr), result.seconds))

    container_id = f"bench-profile-{k}"
    pid_file = bench.workdir / f"profile-{k}.pid"
    profiled("create", "--bundle", str(bench.sleep_bundle), "--pid-file", str(pid_file), container_id)
    profiled("state", container_id)
    profiled("start", container_id)
    profiled("kill", container_id, "KILL")
    wait_gone(int(pid_file.read_text()))
    profiled("delete", container_id)


def profile_schedule(runs: int, profile_runs: int) -> list[int]:
    """How many profile passes follow each round: spread evenly over the rounds, so that the import shares
    are taken under the same load as the timings (a block at the end would see one moment only)."""
    counts = [0] * runs
    for k in range(profile_runs):
        counts[k * runs // profile_runs] += 1
    return counts


# ---- the report ---------------------------------------------------------------------------------------------


def runc_version(binary: str) -> str:
    lines = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()
    fields = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    version = lines[0].removeprefix("runc version ").strip()
    commit = fields.get("commit", "").strip()
    return f"runc {version}" + (f" ({commit})" if commit and commit != version else "")


def engine_revision() -> str:
    """Which engine was measured: the commit, and whether engine's code had uncommitted changes (the repo is
    shared, so the working tree may be ahead of HEAD)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "engine", "state", "hooks"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "engine (unknown revision)"
    return f"engine {commit}" + (" + uncommitted changes" if dirty else "")


def rows_from(samples: Samples) -> list[report.Row]:
    rows = []
    for key in ("run", *LIFECYCLE, "lifecycle", "list"):
        per = samples.get(key)
        if per and per.get("engine") and per.get("runc"):
            rows.append(report.Row(key, LABELS[key], Summary.of(per["engine"]), Summary.of(per["runc"])))
    return rows


def readme_body(
    rows: list[report.Row],
    floor: Summary,
    load: Summary,
    runs: int,
    list_count: int,
    oci_version: str,
    runc: str,
    engine: str,
    profile_lines: list[str],
) -> str:
    date = datetime.datetime.now(datetime.UTC).date().isoformat()
    kernel = platform.release()
    listed = f" `list` with {list_count} created containers of each runtime." if list_count else ""
    lines = [
        report.markdown_table(rows),
        "",
        f"{date}, {os.cpu_count()} cores, kernel {kernel}, Python {platform.python_version()}, {engine}, {runc}; "
        f"{runs} rounds (after one warm-up), engine and runc interleaved; p10-p90 is the spread of the rounds; "
        f"1-minute load average {load.median:.1f} (median of the rounds, from {load.p10:.1f} to {load.p90:.1f}: "
        "the machine is shared). "
        "One bundle for both: `engine spec`'s default config, a private copy of the busybox rootfs (read-only), "
        f"ociVersion {oci_version}. State under private `--root` dirs on tmpfs. engine's .pyc files compiled "
        f"beforehand (`python -m compileall engine state hooks`: PYTHONDONTWRITEBYTECODE=1 is set on this machine)."
        f"{listed}",
        "",
        report.goals_line(rows),
        report.floor_line(floor, rows),
    ]
    if profile_lines:
        lines += [
            "",
            "Where engine's time goes (`python -X importtime`, which slows what it measures; ms):",
            "",
            *profile_lines,
        ]
    return "\n".join(lines)


@contextlib.contextmanager
def scratch(keep: bool) -> Iterator[Path]:
    # Under /run (tmpfs), as the runtimes' default roots /run/runc and /run/engine are: state.json writes and
    # fsyncs cost there what they cost in real use.
    base = "/run" if os.path.isdir("/run") and os.access("/run", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="engine-bench-", dir=base))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def measure(
    args: argparse.Namespace, work: Path, python: str, notes: list[str]
) -> tuple[Samples, list[float], dict[str, list[Profiled]], str]:
    """All the measuring, in the scratch dir: (timings, load average per round, import profiles, ociVersion)."""
    # A private copy of the rootfs: the shared .cache/rootfs gets rebuilt (rm + mv) by other engineers' test
    # runs, which once made /bin/sleep vanish mid-benchmark. On tmpfs, the same for both runtimes.
    rootfs = copy_rootfs(args.rootfs, work / "rootfs")
    bench = Bench(
        engine=Runtime("engine", args.engine, work / "engine-root"),
        runc=Runtime("runc", args.runc, work / "runc-root"),
        run_bundle=work / "bundle-true",
        sleep_bundle=work / "bundle-sleep",
        workdir=work,
        python=python,
        notes=notes,
    )
    samples: Samples = defaultdict(lambda: defaultdict(list))
    loads: list[float] = []  # the 1-minute load average per round: how busy the shared machine was
    imports: dict[str, list[Profiled]] = defaultdict(list)
    try:
        oci_version = probe_oci_version(bench, rootfs)
        # One warm-up round, not counted: the first commands fill the page cache for both binaries.
        bench.run_round(args.runs, defaultdict(lambda: defaultdict(list)))
        for i, profile_passes in enumerate(profile_schedule(args.runs, args.profile_runs)):
            print(f"round {i + 1}/{args.runs}", file=sys.stderr)
            loads.append(os.getloadavg()[0])
            bench.run_round(i, samples)
            for _ in range(profile_passes):
                profile_once(bench, python, len(imports["create"]), imports)
        if args.list:
            print(f"list with {args.list} containers", file=sys.stderr)
            bench.measure_list(args.list, args.runs, samples)
    finally:
        bench.cleanup()
    leftovers = [rt.name for rt in (bench.engine, bench.runc) if rt.ids()]
    if leftovers:
        notes.append(f"containers left behind by: {', '.join(leftovers)}")
    return samples, loads, imports, oci_version


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="measured rounds (default 20)")
    parser.add_argument("--write-readme", action="store_true", help="put the table into README.md's block")
    parser.add_argument("--profile", action="store_true", help="print the full import-time listing")
    parser.add_argument("--profile-runs", type=int, default=5, help="importtime runs per command (default 5)")
    parser.add_argument("--list", type=int, default=0, metavar="N", help="also time `list` with N containers")
    parser.add_argument("--engine", default=str(Path(sys.executable).with_name("engine")), help="engine binary")
    parser.add_argument("--runc", default="/usr/sbin/runc", help="runc binary")
    parser.add_argument("--rootfs", type=Path, default=REPO / ".cache" / "rootfs", help="busybox rootfs")
    parser.add_argument("--raw", type=Path, help="also write every sample (seconds) to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir (bundles, roots)")
    parser.add_argument(
        "--max-load",
        type=float,
        metavar="L",
        help="first wait (up to 15 min) until the 1-minute load average is below L",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.profile_runs < 1:
        parser.error("--runs and --profile-runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (both runtimes create real namespaces and mounts)", file=sys.stderr)
        return 1
    if args.max_load is not None:
        wait_for_load(args.max_load, timeout=900)
    python = interpreter_of(args.engine)
    compile_engine(python)
    ensure_rootfs(args.rootfs)
    set_child_subreaper()
    revision_before = engine_revision()  # others commit to this repo while we measure: note it if they did
    notes: list[str] = []
    try:
        with scratch(args.keep) as work:
            samples, loads, imports, oci_version = measure(args, work, python, notes)
    finally:
        # The scratch dir (both roots) is gone now, so engine's exit monitor exits; it was orphaned to us (the
        # subreaper): wait for it, so the bench leaves nothing running even when it failed.
        alive = reap_all(timeout=5.0)
        if alive:
            notes.append(f"processes still alive after the bench (ours, orphaned): {alive}")

    rows = rows_from(samples)
    medians = {command: report.median_entries([p.entries for p in runs]) for command, runs in imports.items()}
    profile_lines = [
        report.import_summary_line(
            command,
            medians[command],
            args.profile_runs,
            profiled_wall=median([p.seconds for p in imports[command]]),
        )
        for command in PROFILED
        if command in medians
    ]
    floor = Summary.of(samples["floor"]["engine"])
    revision_after = engine_revision()
    revision = revision_before
    if revision_after != revision_before:
        revision = f"{revision_before}, then {revision_after.removeprefix('engine ')} (changed during the run)"
    body = readme_body(
        rows,
        floor,
        Summary.of(loads),
        args.runs,
        args.list,
        oci_version,
        runc_version(args.runc),
        revision,
        profile_lines,
    )
    print(body)
    for note in notes:
        print(f"\nnote: {note}")
    if args.profile:
        for command in PROFILED:
            if command in medians:
                print("\n" + report.import_detail(command, medians[command]))
    if args.raw:
        args.raw.write_text(json.dumps({op: dict(per) for op, per in samples.items()}, indent=1))
    if args.write_readme:
        report.write_readme(REPO / "README.md", body)
        print("\nREADME.md: benchmark block updated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
