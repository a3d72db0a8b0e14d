"""Plant every fault of tests/faults/table.py in a copy of the tree and require its tests to fail.

    .venv/bin/python -m tests.faults                 # every fault but the slow ones (qemu guest lanes)
    .venv/bin/python -m tests.faults --slow          # those too
    .venv/bin/python -m tests.faults -k pause -k exec  # faults whose name contains one of the words
    .venv/bin/python -m tests.faults --list

The copy (the repo's tracked and untracked-but-not-ignored files, so uncommitted work is judged too) gets a
virtualenv of its own whose only paths are the copy and the repo venv's site-packages (the dependencies): its
`.venv/bin/engine` is the copy's engine, and tests/integration/conftest.py finds the engine binary beside
sys.executable, so every engine command a test runs, and every engine podman, conmon or containerd-shim starts,
is the planted copy. The copy gets the repo's busybox rootfs (.cache/rootfs, copied) and ../shared (a symlink).

First the copy runs every selection with no fault planted (the baseline: a red baseline proves nothing); then,
for each fault, the file is rewritten, the selection run (stopping at the first failure) and the file restored.
A fault is CAUGHT when pytest reports failed tests (exit 1) and, where the fault names one, its evidence appears
in the output (it failed for the reason it proves); MISSED when the tests pass. Anything else (a collection
error, a timeout, a replacement that no longer applies) is an ERROR. The exit status is 0 only if the baseline
passed and every fault was caught. Logs stay in the work directory with --keep.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import site
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.faults.table import FAULTS, Fault

REPO = Path(__file__).resolve().parents[2]
PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "-rfE"]
ENGINE_WRAPPER = """#!{python}
import sys

from engine.cli import main

sys.exit(main())
"""


def tracked_files(repo: Path) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    return sorted({name for name in out.decode().split("\0") if name})


def make_copy(repo: Path, work: Path) -> Path:
    """work/tree: a copy of the repo with a venv whose engine is the copy's; work/shared: the repo's ../shared."""
    tree = work / "tree"
    (tree / ".cache").mkdir(parents=True)
    for name in tracked_files(repo):
        source = repo / name
        if not os.path.lexists(source):
            continue  # deleted in the worktree, not yet committed
        target = tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    shared = repo.parent / "shared"
    if shared.exists():
        (work / "shared").symlink_to(shared.resolve())
    rootfs = repo / ".cache" / "rootfs"
    if not (rootfs / "bin" / "busybox").exists():
        raise SystemExit(f"{rootfs} is missing: run ./setup.sh first")
    # A copy (2 MB), not a symlink: runc refuses a rootfs path that goes through one.
    subprocess.run(["cp", "-a", str(rootfs), str(tree / ".cache" / "rootfs")], check=True)

    venv = tree / ".venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The copy first; then the dependencies of the venv running us (a plain path: its .pth files, among them the
    # editable install pointing at the repo, are not read).
    paths = [str(tree), *site.getsitepackages()]
    Path(purelib, "engine_faults.pth").write_text("\n".join(paths) + "\n")
    engine = venv / "bin" / "engine"
    engine.write_text(ENGINE_WRAPPER.format(python=python))
    engine.chmod(0o755)
    subprocess.run([str(python), "-m", "compileall", "-q", "engine", "state", "hooks"], cwd=tree, check=True)

    found = subprocess.run(
        [str(python), "-c", "import engine, state, hooks; print(engine.__file__, state.__file__, hooks.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.split()
    if not all(Path(f).is_relative_to(tree) for f in found):
        raise SystemExit(f"the copy's venv imports {found}, not the copy's modules under {tree}")
    return tree


def overlay_tests(repo: Path, tree: Path, rev: str) -> None:
    """tests/ and conformance/ as they were at rev (the engine stays the current one)."""
    for name in ("tests", "conformance"):
        shutil.rmtree(tree / name, ignore_errors=True)
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", rev, "tests", "conformance"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    # The runner itself lives in tests/faults: it is already imported, nothing there is needed from rev.


def plant(tree: Path, fault: Fault) -> str:
    """Rewrite the fault's file in the copy; returns the original text (to restore)."""
    path = tree / fault.file
    original = path.read_text()
    path.write_text(planted(original, fault))
    return original


def planted(text: str, fault: Fault) -> str:
    """text with the fault's edits made; ValueError if one's text does not occur exactly once."""
    for i, edit in enumerate(fault.edits):
        count = text.count(edit.old)
        if count != 1:
            raise ValueError(f"{fault.file}: the text of edit {i + 1} occurs {count} times (must be exactly once)")
        text = text.replace(edit.old, edit.new)
    return text


def recompile(tree: Path, fault: Fault) -> None:
    if fault.file.endswith(".py"):
        subprocess.run(
            [str(tree / ".venv" / "bin" / "python"), "-m", "py_compile", fault.file], cwd=tree, capture_output=True
        )


def run_pytest(
    tree: Path, selection: list[str], log: Path, timeout: float, stop_first: bool, extra_env: dict[str, str]
) -> tuple[int, str]:
    command = [str(tree / ".venv" / "bin" / "python"), *PYTEST, *(["-x"] if stop_first else []), *selection]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | extra_env
    with log.open("w+") as out:
        try:
            code = subprocess.run(command, cwd=tree, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=timeout)
            rc = code.returncode
        except subprocess.TimeoutExpired:
            rc = -1
        out.seek(0)
        return rc, out.read()


def judge(fault: Fault, rc: int, output: str) -> str:
    if rc == 1:
        if fault.evidence and fault.evidence not in output:
            return f"ERROR (failed, but without {fault.evidence!r}: not for the reason it proves)"
        return "CAUGHT"
    if rc == 0:
        return "MISSED"
    return "ERROR (timed out)" if rc == -1 else f"ERROR (pytest exit {rc})"


def tail(text: str, lines: int = 25) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", action="append", default=[], help="only faults whose name contains this (repeatable)")
    parser.add_argument("--slow", action="store_true", help="also the slow faults (the qemu guest lanes)")
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (the copy and the logs)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unplanted run of the selections")
    parser.add_argument(
        "--against", nargs="+", metavar="TEST", help="run these tests for every fault instead of its own selection"
    )
    parser.add_argument(
        "--tests-from",
        metavar="REV",
        help="replace the copy's tests/ and conformance/ by those of git revision REV (with --against: does an "
        "older suite catch the faults?)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one pytest run may take")
    args = parser.parse_args(argv)

    faults = [f for f in FAULTS if (args.slow or not f.slow) and (not args.k or any(k in f.name for k in args.k))]
    if args.list:
        for f in FAULTS:
            print(f"{f.name:40s} {f.point:6s} {'slow ' if f.slow else ''}{f.file}: {f.what}")
        return 0
    if not faults:
        print("no fault selected")
        return 2

    if sys.prefix == sys.base_prefix:
        print("run it with the project's venv: .venv/bin/python -m tests.faults (its site-packages are the copy's)")
        return 2
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="engine-faults-"))
    work.chmod(0o755)  # as a checkout: a container's mapped root (a user namespace) must reach the rootfs
    logs = work / "logs"
    logs.mkdir()
    failures = 0
    try:
        tree = make_copy(REPO, work)
        print(f"copy of {REPO} in {tree} ({time.monotonic() - started:.0f} s)", flush=True)
        if args.tests_from:
            overlay_tests(REPO, tree, args.tests_from)
        if args.against:
            faults = [dataclasses.replace(f, tests=list(args.against), evidence="") for f in faults]
        if not args.no_baseline:
            selection = list(dict.fromkeys(t for f in faults for t in f.tests))
            t0 = time.monotonic()
            env = {k: v for f in faults for k, v in f.env.items()}
            rc, output = run_pytest(tree, selection, logs / "baseline.log", args.timeout, False, env)
            print(f"{'baseline':40s} {'passed' if rc == 0 else f'FAILED (exit {rc})'} {time.monotonic() - t0:6.1f} s")
            if rc != 0:
                print(tail(output))
                return 1
        for fault in faults:
            t0 = time.monotonic()
            try:
                original = plant(tree, fault)
            except (OSError, ValueError) as err:
                print(f"{fault.name:40s} ERROR (cannot plant: {err})")
                failures += 1
                continue
            try:
                recompile(tree, fault)
                rc, output = run_pytest(tree, fault.tests, logs / f"{fault.name}.log", args.timeout, True, fault.env)
            finally:
                (tree / fault.file).write_text(original)
                recompile(tree, fault)
            verdict = judge(fault, rc, output)
            print(f"{fault.name:40s} {verdict:8s} {time.monotonic() - t0:6.1f} s  [{fault.point}]", flush=True)
            if verdict != "CAUGHT":
                failures += 1
                print(tail(output))
        total = time.monotonic() - started
        print(f"{len(faults) - failures} of {len(faults)} faults caught in {total:.0f} s")
        return 1 if failures else 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
