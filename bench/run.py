"""engine vs runc, side by side: `.venv/bin/python bench/run.py --write-readme` writes README's table (root).

Every row of issue #11's table, in one run: `run` /bin/true, create, state, start, kill, delete and the whole
lifecycle for engine (setup.sh's), the pip-installed engine (a fresh venv, `pip install .`) and runc,
interleaved command by command (who goes first rotates by round, so the noise of this shared machine falls on
all alike); the bare interpreter `python -S -I -c pass` (engine's own interpreter) sampled in the same rounds,
as the floor the hot commands are judged against; then bench/scale.py's rows (1000 containers, 32 at once).
Medians and p10-p90; the load average, the machine and the commit go with the table.

    .venv/bin/python bench/run.py                  # prints the table (20 rounds, pip engine, scale rows)
    .venv/bin/python bench/run.py --write-readme   # and puts it into README.md's Performance block
    .venv/bin/python bench/run.py --quick          # a few rounds, small counts, no pip install (CI)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, sys.path[0] is bench/ itself: make `bench` (and the repo's engine) importable.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import report, scale  # noqa: E402
from bench.runtimes import (  # noqa: E402
    BenchError,
    Runtime,
    compile_engine,
    copy_rootfs,
    engine_revision,
    ensure_rootfs,
    execute,
    filesystem_of,
    interpreter,
    interpreter_of,
    machine,
    pip_install_engine,
    reap_all,
    reap_strays,
    runc_version,
    scratch,
    set_child_subreaper,
    wait_for_load,
    wait_gone,
    write_bundle,
)
from bench.stats import Summary, median  # noqa: E402

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
}
PROFILED = ("create", "state", "start", "kill", "delete")

Samples = dict[str, dict[str, list[float]]]  # operation -> runtime name -> seconds


@dataclass
class Profiled:
    """One `python -X importtime` run of an engine command: its imports and its wall time (seconds)."""

    entries: list[report.ImportEntry]
    seconds: float


@dataclass
class Bench:
    runtimes: list[Runtime]  # engine first, then the pip-installed engine if any, runc last
    python: str  # engine's interpreter: the floor is `python -S -I -c pass` with it
    run_bundle: Path
    sleep_bundle: Path
    workdir: Path
    notes: list[str]

    @property
    def engine(self) -> Runtime:
        return self.runtimes[0]

    @property
    def runc(self) -> Runtime:
        return self.runtimes[-1]

    def order(self, round_index: int) -> list[Runtime]:
        # Rotate who goes first: the later commands of a round find caches warmer (page cache, dentries).
        k = round_index % len(self.runtimes)
        return self.runtimes[k:] + self.runtimes[:k]

    def each(self, i: int, step: Callable[[Runtime], float], samples: Samples, op: str) -> None:
        for rt in self.order(i):
            samples[op][rt.name].append(step(rt))

    def floor(self, samples: Samples) -> None:
        # The interpreter starting and exiting, which every engine command pays before its own work.
        samples["floor"]["engine"].append(execute([self.python, "-S", "-I", "-c", "pass"]).seconds)

    def run_round(self, i: int, samples: Samples) -> None:
        run_id, life_id = f"bench-{i}-run", f"bench-{i}-life"
        pids: dict[str, int] = {}

        def run(rt: Runtime) -> float:
            seconds = rt("run", "--bundle", str(self.run_bundle), rt.cid(run_id)).seconds
            if rt.exists(rt.cid(run_id)):
                # runc run deletes its container unless --keep, and so does engine; if one did not, its
                # time would be missing the delete: say so rather than hide it.
                self.notes.append(f"{rt.name} run left {run_id} behind (deleted outside the timing)")
                rt("delete", "--force", rt.cid(run_id), check=False)
            return seconds

        def create(rt: Runtime) -> float:
            pid_file = self.workdir / f"{rt.tag}-{i}.pid"
            bundle = str(self.sleep_bundle)
            seconds = rt("create", "--bundle", bundle, "--pid-file", str(pid_file), rt.cid(life_id)).seconds
            pids[rt.name] = int(pid_file.read_text())
            return seconds

        def state(rt: Runtime) -> float:
            result = rt("state", rt.cid(life_id), capture=True)
            status = json.loads(result.stdout)["status"]
            if status != "created":
                raise BenchError(f"{rt.name} state {life_id}: {status}, expected created")
            return result.seconds

        self.each(i, run, samples, "run")
        self.each(i, create, samples, "create")
        self.floor(samples)
        self.each(i, state, samples, "state")
        self.each(i, lambda rt: rt("start", rt.cid(life_id)).seconds, samples, "start")
        self.floor(samples)
        self.each(i, lambda rt: rt("kill", rt.cid(life_id), "KILL").seconds, samples, "kill")
        for rt in self.order(i):
            wait_gone(pids[rt.name])  # not timed: the exit is the kernel's work, not the runtime's
        self.floor(samples)
        self.each(i, lambda rt: rt("delete", rt.cid(life_id)).seconds, samples, "delete")
        for rt in self.runtimes:
            samples["lifecycle"][rt.name].append(sum(samples[op][rt.name][-1] for op in LIFECYCLE))

    def cleanup(self) -> None:
        for rt in self.runtimes:
            rt.cleanup()
        reap_strays()


def probe_oci_version(bench: Bench, rootfs: Path) -> str:
    """Use engine's ociVersion if runc accepts it, else the fallback; all runtimes always get the same file."""
    from engine import SPEC_VERSION

    for version in (SPEC_VERSION, FALLBACK_OCI_VERSION):
        write_bundle(bench.run_bundle, ["true"], rootfs, version)
        write_bundle(bench.sleep_bundle, ["sleep", "600"], rootfs, version)
        result = bench.runc("run", "--bundle", str(bench.run_bundle), "bench-probe", check=False)
        if bench.runc.exists("bench-probe"):
            bench.runc("delete", "--force", "bench-probe", check=False)
        if result.returncode == 0:
            if version != SPEC_VERSION:
                bench.notes.append(f"runc refused ociVersion {SPEC_VERSION}: all ran {version}")
            return version
    raise BenchError(f"runc refused both ociVersion {SPEC_VERSION} and {FALLBACK_OCI_VERSION}")


# ---- profiling ----------------------------------------------------------------------------------------------


def profile_once(bench: Bench, k: int, found: dict[str, list[Profiled]]) -> None:
    """`python -X importtime` of engine's lifecycle commands on one real container, started as the engine
    command starts Python (-S -I); create's forked children report their imports too."""

    def profiled(command: str, *args: str) -> None:
        argv = [bench.python, "-S", "-I", "-X", "importtime", *bench.engine.argv(command, *args)]
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


def rows_from(samples: Samples, names: list[str]) -> list[report.Row]:
    rows = []
    pip = "engine (pip)" if "engine (pip)" in names else None
    for key in ("run", "create", "lifecycle", *report.HOT):
        per = samples.get(key)
        if per and per.get("engine") and per.get("runc"):
            pip_summary = Summary.of(per[pip]) if pip and per.get(pip) else None
            rows.append(report.Row(key, LABELS[key], Summary.of(per["engine"]), Summary.of(per["runc"]), pip_summary))
    return rows


def compare_table(label: str, samples: Samples, floor: Summary) -> str:
    """An extra engine (--compare) beside engine and runc, from the same rounds."""
    lines = [
        f"| operation | {label} (ms) | engine (ms) | runc (ms) | {label}/runc | engine/runc | {label}/interpreter |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for key in ("run", "create", "lifecycle", *report.HOT):
        per = samples.get(key, {})
        if not (per.get(label) and per.get("engine") and per.get("runc")):
            continue
        other, engine, runc = (median(per[name]) for name in (label, "engine", "runc"))
        lines.append(
            f"| {LABELS[key]} | {other * 1000:.1f} | {engine * 1000:.1f} | {runc * 1000:.1f} "
            f"| {report.format_ratio(other / runc)} | {report.format_ratio(engine / runc)} "
            f"| {report.format_ratio(other / floor.median)} |"
        )
    return "\n".join(lines)


def scale_rows(results: scale.ScaleResults) -> list[report.Row]:
    """The scale results that have a goal, as rows for report.goal_results."""
    rows = []
    for key, (engine, runc) in scale.goals(results).items():
        rows.append(report.Row(key, key, Summary(1, engine, engine, engine), Summary(1, runc, runc, runc)))
    return rows


def readme_body(
    rows: list[report.Row],
    floor: Summary,
    load: Summary,
    runs: int,
    oci_version: str,
    runc: str,
    engine: str,
    scale_table: str,
    goal_rows: list[report.Row],
    profile_lines: list[str],
    roots_fs: str = "tmpfs",
) -> str:
    date = datetime.datetime.now(datetime.UTC).date().isoformat()
    lines = [
        report.markdown_table(rows),
        "",
        report.floor_table(rows, floor),
        "",
    ]
    if scale_table:
        lines += [scale_table, ""]
    lines += [
        f"{date}, {machine()}, Python {platform.python_version()} ({interpreter()}), {engine}, {runc}; {runs} "
        "rounds (after one warm-up), the runtimes interleaved command by command; p10-p90 is the spread of the "
        "rounds; 1-minute load "
        f"average {load.median:.1f} (median of the rounds, p10-p90 {load.p10:.1f}-{load.p90:.1f}: the machine is "
        "shared). engine is setup.sh's (`#!python -SI`); the pip-installed engine is `pip install .` into a new "
        "venv (bin/engine, a /bin/sh launcher that starts `python3 -S -I`). One bundle for all: `engine spec`'s "
        f"default config, a private copy of the busybox rootfs (read-only), ociVersion {oci_version}; state under "
        f"private `--root` dirs on {roots_fs}; engine's .pyc files compiled beforehand (PYTHONDONTWRITEBYTECODE=1 is "
        "set on this machine). Command: `.venv/bin/python bench/run.py --write-readme`.",
        "",
        report.goals_line(rows + goal_rows, floor),
        report.floor_line(floor, rows),
    ]
    if profile_lines:
        lines += [
            "",
            "Where engine's time goes (`python -S -I -X importtime`, which slows what it measures; ms):",
            "",
            *profile_lines,
        ]
    return "\n".join(lines)


def measure(
    args: argparse.Namespace, work: Path, python: str, notes: list[str]
) -> tuple[Samples, list[float], dict[str, list[Profiled]], str, scale.ScaleResults | None]:
    """All the measuring, in the scratch dir."""
    # A private copy of the rootfs: the shared .cache/rootfs gets rebuilt (rm + mv) by other engineers' test
    # runs, which once made /bin/sleep vanish mid-benchmark. On tmpfs, the same for all runtimes.
    rootfs = copy_rootfs(args.rootfs, work / "rootfs")
    runtimes = [Runtime("engine", args.engine, work / "engine-root", "e-")]
    if args.pip:
        print("pip install . into a new venv", file=sys.stderr)
        pip_engine = pip_install_engine(work / "pip", python)
        runtimes.append(Runtime("engine (pip)", pip_engine, work / "pip-root", "p-"))
    for n, spec in enumerate(args.compare):
        label, _, binary = spec.partition("=")
        runtimes.append(Runtime(label, binary, work / f"compare-{n}-root", f"c{n}-"))
    runtimes.append(Runtime("runc", args.runc, work / "runc-root", "r-"))
    bench = Bench(runtimes, python, work / "bundle-true", work / "bundle-sleep", work, notes)
    samples: Samples = defaultdict(lambda: defaultdict(list))
    loads: list[float] = []  # the 1-minute load average per round: how busy the shared machine was
    imports: dict[str, list[Profiled]] = defaultdict(list)
    results = None
    try:
        oci_version = probe_oci_version(bench, rootfs)
        # One warm-up round, not counted: the first commands fill the page cache for the binaries.
        bench.run_round(args.runs, defaultdict(lambda: defaultdict(list)))
        for i, profile_passes in enumerate(profile_schedule(args.runs, args.profile_runs)):
            print(f"round {i + 1}/{args.runs}", file=sys.stderr)
            loads.append(os.getloadavg()[0])
            bench.run_round(i, samples)
            for _ in range(profile_passes):
                profile_once(bench, len(imports["create"]), imports)
        if args.scale:
            counts = scale.Counts.quick() if args.quick else scale.Counts()
            results = scale.run_all(bench.engine, bench.runc, work, rootfs, counts, oci_version)
            loads.append(os.getloadavg()[0])
    finally:
        bench.cleanup()
    leftovers = [rt.name for rt in bench.runtimes if rt.ids()]
    if leftovers:
        notes.append(f"containers left behind by: {', '.join(leftovers)}")
    return samples, loads, imports, oci_version, results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="measured rounds (default 20)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, small scale counts, no pip install (CI)")
    parser.add_argument("--write-readme", action="store_true", help="put the table into README.md's block")
    parser.add_argument("--no-pip", dest="pip", action="store_false", help="skip the pip-installed engine")
    parser.add_argument("--no-scale", dest="scale", action="store_false", help="skip bench/scale.py's rows")
    parser.add_argument("--profile", action="store_true", help="print the full import-time listing")
    parser.add_argument("--profile-runs", type=int, default=5, help="importtime runs per command (default 5)")
    parser.add_argument("--engine", default=str(Path(sys.executable).with_name("engine")), help="engine binary")
    parser.add_argument("--runc", default="/usr/sbin/runc", help="runc binary")
    parser.add_argument("--rootfs", type=Path, default=REPO / ".cache" / "rootfs", help="busybox rootfs")
    parser.add_argument("--raw", type=Path, help="also write every sample (seconds) to this JSON file")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="LABEL=ENGINE",
        help="also time this engine binary, interleaved (e.g. an older build); printed apart, not in the README",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir (bundles, roots)")
    parser.add_argument(
        "--roots-on-disk",
        action="store_true",
        help="state roots in a directory under /run as it is (this machine: ext4), not on the bench's own tmpfs",
    )
    parser.add_argument(
        "--max-load",
        type=float,
        metavar="L",
        help="first wait (up to 15 min) until the 1-minute load average is below L",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.profile_runs, args.pip = 3, 1, False
    if args.runs < 1 or args.profile_runs < 1:
        parser.error("--runs and --profile-runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (the runtimes create real namespaces and mounts)", file=sys.stderr)
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
        with scratch(args.keep, on_disk=args.roots_on_disk) as work:
            roots_fs = filesystem_of(work)
            samples, loads, imports, oci_version, results = measure(args, work, python, notes)
    finally:
        # The scratch dir (the roots) is gone now, so engine's exit monitor exits; it was orphaned to us (the
        # subreaper): wait for it, so the bench leaves nothing running even when it failed.
        alive = reap_all(timeout=5.0)
        if alive:
            notes.append(f"processes still alive after the bench (ours, orphaned): {alive}")

    names = [name for name in ("engine", "engine (pip)", "runc") if samples["state"].get(name)]
    rows = rows_from(samples, names)
    medians = {command: report.median_entries([p.entries for p in runs]) for command, runs in imports.items()}
    profile_lines = [
        report.import_summary_line(
            command, medians[command], args.profile_runs, profiled_wall=median([p.seconds for p in imports[command]])
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
        oci_version,
        runc_version(args.runc),
        revision,
        scale.table(results) if results else "",
        scale_rows(results) if results else [],
        profile_lines,
        roots_fs + (" (this machine's /run as it is)" if args.roots_on_disk else " (mounted by the bench, as /run is)"),
    )
    print(body)
    for spec in args.compare:
        print("\n" + compare_table(spec.partition("=")[0], samples, floor))
    for note in notes:
        print(f"\nnote: {note}")
    if args.profile:
        for command in PROFILED:
            if command in medians:
                print("\n" + report.import_detail(command, medians[command]))
    if args.raw:
        raw = {op: dict(per) for op, per in samples.items()}
        if results is not None:
            raw["scale"] = {"list": results.list_seconds, "run_d": results.run_d, "delete_force": results.delete_force}
            raw["scale"]["concurrent"] = results.concurrent_wall
        args.raw.write_text(json.dumps(raw, indent=1))
    if args.write_readme:
        report.write_readme(REPO / "README.md", body)
        print("\nREADME.md: benchmark block updated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
