"""The end-of-run summary (tests/conftest.py): a green run says what it did not cover. A pytest run of a few
tests, one skipped for a host fact and one for another, must end with both reasons and their counts under "lanes
that did not run", and with the cgroup v2 guest lane when it is off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SAMPLE = """
import pytest

def test_runs():
    pass

@pytest.mark.skip(reason="this host has no frobnicator (planted host fact)")
def test_a():
    pass

@pytest.mark.parametrize("n", [1, 2])
def test_b(n):
    pytest.skip("the widget lane is off on this host")
"""


def summary_of(tmp_path: Path, env: dict[str, str]) -> list[str]:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_sample.py")],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "lanes that did not run" in line)
    return [line.strip() for line in lines[start + 1 :] if line.strip() and not line.startswith("=")][:4]


def test_every_skip_reason_is_listed_with_its_count(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_CGROUP2_GUEST"}
    summary = summary_of(tmp_path, env)
    assert "1 skipped: this host has no frobnicator (planted host fact)" in summary, summary
    assert "2 skipped: the widget lane is off on this host" in summary, summary
    assert any(line.startswith("not collected: ENGINE_CGROUP2_GUEST is not set") for line in summary), summary


def test_the_guest_lane_is_not_listed_when_it_is_on(tmp_path: Path) -> None:
    summary = summary_of(tmp_path, {**os.environ, "ENGINE_CGROUP2_GUEST": "1"})
    assert not any("ENGINE_CGROUP2_GUEST" in line for line in summary), summary
