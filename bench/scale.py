"""engine vs runc at scale (root): `.venv/bin/python bench/scale.py [--quick]`; bench/run.py runs it too.

- N sequential `run -d` of a `sleep` container (default 1000) per runtime, then `list` of those N running
  containers (R times), then `delete --force` of each: the first 100 run/delete against the last 100 (with
  N-100 containers already there, does anything grow with the number of containers?);
- C concurrent create/start/state/kill/delete lifecycles (default 32), wall time from the first command to the
  last container deleted, one runtime at a time (alternating, repeated): what a node starting pods sees.

--quick shrinks every count (CI runs it to keep the script working; its numbers mean little).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.runtimes import (  # noqa: E402
    BenchError,
    Runtime,
    copy_rootfs,
    execute,
    interpreter_of,
    reap_all,
    reap_strays,
    scratch,
    set_child_subreaper,
    wait_gone,
    write_bundle,
)
from bench.stats import Summary, median, ratio  # noqa: E402

FIRST_LAST = 100  # the sequential row compares the first and the last this many


@dataclass
class Counts:
    sequential: int = 1000  # also the number of containers `list` shows
    list_runs: int = 10
    concurrent: int = 32
    concurrent_repeats: int = 3

    @classmethod
    def quick(cls) -> Counts:
        return cls(sequential=12, list_runs=3, concurrent=4, concurrent_repeats=1)


@dataclass
class ScaleResults:
    counts: Counts
    list_seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    run_d: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # in creation order
    delete_force: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    concurrent_wall: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # `python -S -I -c pass`, once per container of the sequential row: what the machine's load alone did from the
    # first containers to the last (others share the cores; the row runs for minutes).
    floor: list[float] = field(default_factory=list)


def pair(i: int, engine: Runtime, runc: Runtime) -> tuple[Runtime, Runtime]:
    """Alternate which runtime goes first: the second of a pair finds caches warmer."""
    return (engine, runc) if i % 2 == 0 else (runc, engine)


def measure_sequential(engine: Runtime, runc: Runtime, bundle: Path, counts: Counts, out: ScaleResults) -> None:
    """N `run -d` one after the other (containers pile up), `list` of them all, then `delete --force` of each.
    Running `sleep` containers, not created ones: a created container's init is a blocked interpreter (engine)
    or runc init, megabytes each, and a thousand of them would crowd this shared machine."""
    ids = [f"scale-{n}" for n in range(counts.sequential)]
    floor = [interpreter_of(engine.binary), "-S", "-I", "-c", "pass"]
    try:
        for n, container_id in enumerate(ids):
            for rt in pair(n, engine, runc):
                out.run_d[rt.name].append(rt("run", "-d", "--bundle", str(bundle), rt.cid(container_id)).seconds)
            out.floor.append(execute(floor).seconds)
        for i in range(counts.list_runs):
            for rt in pair(i, engine, runc):
                result = rt("list", capture=True)
                listed = len(result.stdout.strip().splitlines()) - 1  # the header line
                if listed != len(ids):
                    raise BenchError(f"{rt.name} list showed {listed} containers, expected {len(ids)}")
                out.list_seconds[rt.name].append(result.seconds)
        for n, container_id in enumerate(ids):
            for rt in pair(n, engine, runc):
                out.delete_force[rt.name].append(rt("delete", "--force", rt.cid(container_id)).seconds)
    finally:
        for rt in (engine, runc):
            rt.cleanup()
        reap_strays()


def one_lifecycle(rt: Runtime, bundle: Path, container_id: str, pid_file: Path) -> None:
    rt("create", "--bundle", str(bundle), "--pid-file", str(pid_file), container_id)
    state = json.loads(rt("state", container_id, capture=True).stdout)
    if state["status"] != "created":
        raise BenchError(f"{rt.name} state {container_id}: {state['status']}, expected created")
    rt("start", container_id)
    rt("kill", container_id, "KILL")
    wait_gone(int(pid_file.read_text()))
    rt("delete", container_id)


def measure_concurrent(
    engine: Runtime, runc: Runtime, bundle: Path, work: Path, counts: Counts, out: ScaleResults
) -> None:
    """C lifecycles at once, per runtime; the wall time of the whole batch."""
    for repeat in range(counts.concurrent_repeats):
        for rt in pair(repeat, engine, runc):
            ids = [f"scale-conc-{repeat}-{n}" for n in range(counts.concurrent)]
            start = threading.Barrier(counts.concurrent)

            def lifecycle(container_id: str, rt: Runtime = rt, start: threading.Barrier = start) -> None:
                start.wait()
                one_lifecycle(rt, bundle, rt.cid(container_id), work / f"{rt.cid(container_id)}.pid")

            begin = time.perf_counter()
            try:
                with ThreadPoolExecutor(max_workers=counts.concurrent) as pool:
                    for future in [pool.submit(lifecycle, container_id) for container_id in ids]:
                        future.result()
            finally:
                rt.cleanup()
                reap_strays()
            out.concurrent_wall[rt.name].append(time.perf_counter() - begin)


def run_all(engine: Runtime, runc: Runtime, work: Path, rootfs: Path, counts: Counts, oci_version: str) -> ScaleResults:
    sleep_bundle = write_bundle(work / "scale-sleep", ["sleep", "600"], rootfs, oci_version)
    out = ScaleResults(counts)
    print(f"scale: {counts.sequential} sequential run -d, list, then delete --force each", file=sys.stderr)
    measure_sequential(engine, runc, sleep_bundle, counts, out)
    print(f"scale: {counts.concurrent} concurrent lifecycles", file=sys.stderr)
    measure_concurrent(engine, runc, sleep_bundle, work, counts, out)
    return out


# ---- the report --------------------------------------------------------------------------------------------


def first_last(samples: list[float]) -> tuple[float, float]:
    k = min(FIRST_LAST, max(1, len(samples) // 2))
    return median(samples[:k]), median(samples[-k:])


def table(results: ScaleResults) -> str:
    """The scale rows of the issue's table, engine beside runc."""
    c = results.counts
    lines = [
        "| at scale | engine | runc | engine/runc | target |",
        "|---|--:|--:|--:|---|",
    ]
    if results.list_seconds:
        e, r = (Summary.of(results.list_seconds[name]) for name in ("engine", "runc"))
        lines.append(
            f"| `list`, {c.sequential} running containers (median of {c.list_runs}) | {e.median * 1000:.1f} ms "
            f"| {r.median * 1000:.1f} ms | {ratio(e.median, r.median):.2f}x | <= 1x (moonshot 0.5x) |"
        )
    if results.run_d:
        k = min(FIRST_LAST, max(1, c.sequential // 2))
        for label, samples in (("run -d", results.run_d), ("delete --force", results.delete_force)):
            (e1, e2), (r1, r2) = first_last(samples["engine"]), first_last(samples["runc"])
            lines.append(
                f"| {c.sequential} sequential `{label}`: median of the first {k} -> of the last {k} "
                f"| {e1 * 1000:.1f} -> {e2 * 1000:.1f} ms ({ratio(e2, e1):.2f}x) "
                f"| {r1 * 1000:.1f} -> {r2 * 1000:.1f} ms ({ratio(r2, r1):.2f}x) "
                f"| {ratio(e2, r2):.2f}x (last) | no slowdown |"
            )
        if results.floor:
            f1, f2 = first_last(results.floor)
            lines.append(
                f"| the machine meanwhile: `python -S -I -c pass` beside each pair of `run -d`, first {k} -> last {k} "
                f"| {f1 * 1000:.1f} -> {f2 * 1000:.1f} ms ({ratio(f2, f1):.2f}x) | | | (load, not containers) |"
            )
    if results.concurrent_wall:
        e, r = (median(results.concurrent_wall[name]) for name in ("engine", "runc"))
        lines.append(
            f"| {c.concurrent} concurrent create/start/state/kill/delete (wall, median of "
            f"{c.concurrent_repeats}) | {e:.2f} s | {r:.2f} s | {ratio(e, r):.2f}x | <= 2x (moonshot 1.3x) |"
        )
    return "\n".join(lines)


def goals(results: ScaleResults) -> dict[str, tuple[float, float]]:
    """key -> (engine median, runc median), for bench.report's goals (list1000, concurrent)."""
    found = {}
    if results.list_seconds:
        found["list1000"] = (median(results.list_seconds["engine"]), median(results.list_seconds["runc"]))
    if results.concurrent_wall:
        found["concurrent"] = (median(results.concurrent_wall["engine"]), median(results.concurrent_wall["runc"]))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (CI: the script still works)")
    parser.add_argument("--engine", default=str(Path(sys.executable).with_name("engine")), help="engine binary")
    parser.add_argument("--runc", default="/usr/sbin/runc", help="runc binary")
    parser.add_argument("--rootfs", type=Path, default=REPO / ".cache" / "rootfs", help="busybox rootfs")
    parser.add_argument("--raw", type=Path, help="also write every sample (seconds) to this JSON file")
    parser.add_argument("--sequential", type=int, metavar="N", help="containers run one after the other (1000)")
    parser.add_argument("--concurrent", type=int, metavar="C", help="lifecycles at once (32)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/scale.py: needs root (both runtimes create real namespaces and mounts)", file=sys.stderr)
        return 1
    counts = Counts.quick() if args.quick else Counts()
    if args.sequential is not None:
        counts.sequential = args.sequential
    if args.concurrent is not None:
        counts.concurrent = args.concurrent
    set_child_subreaper()
    try:
        with scratch(keep=False) as work:  # its own tmpfs, as run.py's
            rootfs = copy_rootfs(args.rootfs, work / "rootfs")
            engine = Runtime("engine", args.engine, work / "engine-root", "e-")
            runc = Runtime("runc", args.runc, work / "runc-root", "r-")
            from engine import SPEC_VERSION

            results = run_all(engine, runc, work, rootfs, counts, SPEC_VERSION)
    finally:
        reap_all(timeout=5.0)
    print(table(results))
    if args.raw:
        raw = {
            "list": results.list_seconds,
            "run_d": results.run_d,
            "delete_force": results.delete_force,
            "floor": results.floor,
            "concurrent": results.concurrent_wall,
        }
        args.raw.write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
