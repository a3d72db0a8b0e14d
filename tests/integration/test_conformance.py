"""The conformance suite (python -m conformance) run against runc and against engine, plus its own invariants.

The suite runs as a subprocess exactly as a user runs it, so what passes here is what the README promises.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import load_checks
from conformance.registry import CHECKS, verify_sentences
from tests.conftest import NOT_JUDGED

REPO = Path(__file__).resolve().parents[2]
RUNC = Path("/usr/sbin/runc")
ENGINE = Path(sys.executable).with_name("engine")
SUMMARY = re.compile(r"^\d+ passed, \d+ failed(, \d+ skipped)?$")

# Real containers: root only (namespaces, mounts, cgroups).
as_root = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the conformance suite creates real containers: needs root"),
]


def run_suite(runtime: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNTIME": str(runtime)}
    return subprocess.run(
        [sys.executable, "-m", "conformance", "-v"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def report(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-4000:]}"


def test_quotes_are_verbatim(spec_dir: Path) -> None:
    """Every check quotes the spec exactly (rendered text), under a real heading of the named file: all of them,
    each one judged (a check whose module is not loaded, or whose quote is never looked at, fails this)."""
    load_checks()
    sources = (REPO / "conformance").glob("*.py")
    declared = sum(len(re.findall(r"^@check\(", path.read_text(), re.MULTILINE)) for path in sources)
    assert len(CHECKS) == declared, f"{len(CHECKS)} checks registered, {declared} written in conformance/*.py"
    assert verify_sentences(spec_dir) == []
    for chk in CHECKS:  # a wrong quote or heading in any one check is found
        assert verify_sentences(spec_dir, [dataclasses.replace(chk, sentences=(*chk.sentences, "Not in the spec."))])
        assert verify_sentences(spec_dir, [dataclasses.replace(chk, section="Not A Heading")])


@pytest.mark.parametrize(
    "runtime",
    [
        pytest.param(
            RUNC,
            marks=[*as_root, pytest.mark.skipif(not RUNC.exists(), reason=f"{RUNC} not installed")],
            id="runc",
        ),
        pytest.param(
            ENGINE,
            marks=[*as_root, pytest.mark.skipif(not ENGINE.exists(), reason=f"{ENGINE} not installed")],
            id="engine",
        ),
    ],
)
def test_conformance(runtime: Path, request: pytest.FixtureRequest) -> None:
    result = run_suite(runtime)
    lines = result.stdout.strip().splitlines()
    assert lines and SUMMARY.match(lines[-1]), report(result)
    # Checks the suite could not judge here are lanes that did not run: the end-of-run summary lists them.
    for line in lines:
        columns = re.split(r"\s{2,}", line, maxsplit=3)
        if len(columns) >= 3 and columns[2] == "SKIP":
            reason = columns[3] if len(columns) > 3 else "no reason given"
            request.config.stash[NOT_JUDGED].append(f"{runtime.name}: {columns[1]}: {reason}")
    assert result.returncode == 0, report(result)
