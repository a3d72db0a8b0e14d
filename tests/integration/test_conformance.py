"""The conformance suite (python -m conformance) run against runc and against engine, plus its own invariants.

The suite runs as a subprocess exactly as a user runs it, so what passes here is what the README promises.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import load_checks
from conformance.registry import CHECKS, verify_sentences
from conformance.state_schema import SCHEMA_DIR

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
    """Every check quotes the spec exactly (rendered text), under a real heading of the named file."""
    load_checks()
    assert verify_sentences(spec_dir) == []
    assert len(CHECKS) >= 25


def test_vendored_schemas_match_spec(spec_dir: Path) -> None:
    for vendored in sorted(SCHEMA_DIR.glob("*.json")):
        assert vendored.read_bytes() == (spec_dir / "schema" / vendored.name).read_bytes(), vendored.name


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
def test_conformance(runtime: Path) -> None:
    result = run_suite(runtime)
    lines = result.stdout.strip().splitlines()
    assert lines and SUMMARY.match(lines[-1]), report(result)
    assert result.returncode == 0, report(result)
