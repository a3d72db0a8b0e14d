"""Command line: pick the runtime, run the selected checks one by one, print the table and the summary."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from conformance import load_checks
from conformance.deviations import known
from conformance.harness import Ctx, Result, Runtime, mounts_under
from conformance.registry import CHECKS, Check, CheckFailed, CheckSkipped, verify_sentences

REPO = Path(__file__).resolve().parent.parent


def spec_dir() -> Path:
    """CONFORMANCE_SPEC_DIR, or the runtime-spec checkout beside the repository (../shared/runtime-spec)."""
    return Path(os.environ.get("CONFORMANCE_SPEC_DIR") or REPO.parent / "shared" / "runtime-spec")


# STALE: the check passed for a runtime with a recorded deviation: the record is out of date (a failure too).
PASS, FAIL, SKIP, DEVIATION, STALE = "PASS", "FAIL", "SKIP", "DEVIATION", "STALE"
FAILING = (FAIL, STALE)


@dataclass
class Outcome:
    check: Check
    status: str
    reason: str
    seconds: float
    log: list[Result]


def resolve_runtime(value: str) -> str | None:
    """A path, a name on PATH, or a name next to this interpreter (a venv's console script)."""
    if os.sep in value:
        return value if os.access(value, os.X_OK) else None
    found = shutil.which(value)
    if found:
        return found
    beside = Path(sys.executable).parent / value
    return str(beside) if os.access(beside, os.X_OK) else None


def ensure_rootfs() -> Path:
    """CONFORMANCE_ROOTFS, or the repo's busybox rootfs (built by tests/make-rootfs.sh when missing)."""
    rootfs = Path(os.environ.get("CONFORMANCE_ROOTFS") or REPO / ".cache" / "rootfs").resolve()
    if not (rootfs / "bin" / "sh").exists():
        subprocess.run(["sh", str(REPO / "tests" / "make-rootfs.sh"), str(rootfs)], check=True, timeout=300)
    return rootfs


def run_one(chk: Check, runtime: Runtime, rootfs: Path, base: Path, keep: bool) -> Outcome:
    ctx = Ctx(runtime, rootfs, base / chk.name)
    began = time.monotonic()
    try:
        note = chk.func(ctx)
        status, reason = PASS, note or ""
    except CheckFailed as err:
        status, reason = FAIL, str(err)
    except CheckSkipped as err:
        status, reason = SKIP, str(err)
    except Exception as err:  # a crash in a check is a failure, never a silent pass
        status, reason = FAIL, f"check crashed: {type(err).__name__}: {err}"
        traceback.print_exc(file=sys.stderr)
    finally:
        problems = ctx.cleanup()
    leaked = mounts_under(ctx.dir)
    if leaked:
        problems.append(f"host mounts left under {ctx.dir}: {', '.join(leaked)}")
    elif not keep:
        shutil.rmtree(ctx.dir, ignore_errors=True)
    dev = known(runtime.name, chk.name)
    if problems:
        # Whatever the check concluded, the runtime left something behind: that is never excused.
        status, reason = FAIL, "; ".join([f"left behind: {'; '.join(problems)}", *([reason] if reason else [])])
    elif dev is not None and status == FAIL:
        if re.search(dev.reason, reason):
            status, reason = DEVIATION, f"known: {dev.summary} (observed: {reason})"
        else:
            reason = f"{reason} (a deviation is recorded for this check, but it fails otherwise: {dev.reason!r})"
    elif dev is not None and status == PASS:
        status, reason = STALE, f"recorded deviation did not occur ({dev.summary}): remove it from deviations.py"
    return Outcome(chk, status, reason, time.monotonic() - began, ctx.log)


def table(outcomes: list[Outcome]) -> str:
    rows = [("SECTION", "CHECK", "RESULT", "REASON")]
    rows += [(o.check.where, o.check.name, o.status, o.reason) for o in outcomes]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows)


def details(outcome: Outcome, runtime: Runtime) -> str:
    lines = [f"--- {outcome.check.name} [{outcome.status}] {outcome.check.where} ({outcome.seconds:.1f}s)"]
    lines += [f'    spec: "{s}"' for s in outcome.check.sentences]
    lines += [f"    reason: {outcome.reason}"]
    if outcome.status == DEVIATION and (dev := known(runtime.name, outcome.check.name)) is not None:
        lines += [f"    evidence: {dev.evidence}"]
    for result in outcome.log:
        lines.append(f"    $ {result.shown}  -> rc={result.rc}{' TIMEOUT' if result.timed_out else ''}")
        for stream in (result.stdout, result.stderr):
            lines += [f"      | {line}" for line in stream.strip().splitlines()[:6]]
    return "\n".join(lines)


def select(patterns: list[str]) -> list[Check]:
    if not patterns:
        return list(CHECKS)
    return [c for c in CHECKS if any(p.lower() in f"{c.name} {c.where}".lower() for p in patterns)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conformance",
        description="OCI runtime-spec conformance checks for a runc-compatible runtime.",
    )
    parser.add_argument("--runtime", default=os.environ.get("RUNTIME"), help="runtime binary (default: $RUNTIME)")
    parser.add_argument("--list", action="store_true", help="list the selected checks and exit")
    parser.add_argument("-k", action="append", default=[], metavar="SUBSTR", help="select checks (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="spec text and commands of non-PASS checks")
    parser.add_argument("--keep", action="store_true", help="keep the per-check temp directories")
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="checks run at once; each has its own --root and bundle (default: min(4, CPUs))",
    )
    parser.add_argument(
        "--verify-spec",
        nargs="?",
        const=str(spec_dir()),
        metavar="SPEC_DIR",
        help="check that every quoted sentence is verbatim in the spec markdown, then exit",
    )
    args = parser.parse_args(argv)
    load_checks()
    checks = select(args.k)

    if args.verify_spec:
        problems = verify_sentences(Path(args.verify_spec), checks)
        print("\n".join(problems) or f"{len(checks)} checks: all quoted sentences are verbatim in the spec")
        return 1 if problems else 0
    if args.list:
        for chk in checks:
            print(f"{chk.name}  [{chk.where}]")
            for sentence in chk.sentences:
                print(f'    "{sentence}"')
        print(f"{len(checks)} checks")
        return 0
    if not checks:
        print(f"no check matches {args.k}", file=sys.stderr)
        return 2
    if not args.runtime:
        parser.error("set RUNTIME=/path/to/runtime (or pass --runtime)")
    path = resolve_runtime(args.runtime)
    if path is None:
        print(f"runtime {args.runtime!r} not found or not executable", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("the conformance suite creates real containers: run it as root", file=sys.stderr)
        return 2

    runtime = Runtime(path)
    rootfs = ensure_rootfs()
    base = Path(tempfile.mkdtemp(prefix=f"conformance-{runtime.name}-", dir=os.environ.get("CONFORMANCE_TMPDIR")))
    began = time.monotonic()
    try:
        # Checks share nothing (own --root, bundle, ids, marker dir), so they can overlap; results keep
        # registration order.
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            outcomes = list(pool.map(lambda chk: run_one(chk, runtime, rootfs, base, args.keep), checks))
    finally:
        if not args.keep and not mounts_under(base):
            shutil.rmtree(base, ignore_errors=True)

    print(table(outcomes))
    if args.verbose:
        for outcome in outcomes:
            if outcome.status != PASS:
                print(details(outcome, runtime))
    count = {s: sum(o.status == s for o in outcomes) for s in (PASS, FAIL, SKIP, DEVIATION, STALE)}
    print(f"runtime {path}; {len(outcomes)} checks in {time.monotonic() - began:.1f}s; rootfs {rootfs}")
    if count[DEVIATION]:
        print(f"{count[DEVIATION]} known deviations of {runtime.name} (conformance/deviations.py), not failures")
    if count[STALE]:
        print(f"{count[STALE]} recorded deviations of {runtime.name} no longer occur: update conformance/deviations.py")
    summary = f"{count[PASS]} passed, {count[FAIL] + count[STALE]} failed"
    if count[SKIP]:
        summary += f", {count[SKIP]} skipped"
    print(summary)
    return 1 if count[FAIL] or count[STALE] else 0
