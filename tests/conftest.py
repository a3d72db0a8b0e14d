"""Shared fixtures (where the repo, the spec and the busybox rootfs are) and the end-of-run summary of the lanes
that did not run, with the host fact that switched each off."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import host

REPO = Path(__file__).resolve().parents[1]
SPEC_DIR = REPO.parent / "shared" / "runtime-spec"


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    if not SPEC_DIR.is_dir():
        pytest.skip(f"runtime-spec not found at {SPEC_DIR} (the repo's sibling ../shared)")
    return SPEC_DIR


@pytest.fixture(scope="session")
def rootfs() -> Path:
    """The busybox rootfs (tests/make-rootfs.sh), built on first use."""
    path = Path(os.environ.get("ENGINE_TEST_ROOTFS", REPO / ".cache" / "rootfs"))
    if not (path / "bin" / "busybox").exists():
        subprocess.run([str(REPO / "tests" / "make-rootfs.sh"), str(path)], check=True)
    return path


@pytest.fixture
def fresh_rootfs(tmp_path: Path, rootfs: Path) -> Callable[[], Path]:
    """Makes private writable copies of the busybox rootfs (2 MB each), to plant an image's tricks in."""
    made: list[Path] = []

    def make() -> Path:
        copy = tmp_path / f"rootfs-{len(made)}"
        subprocess.run(["cp", "-a", str(rootfs), str(copy)], check=True)
        made.append(copy)
        return copy

    return make


def run_in_cgroup2_guest(command: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run tests/cgroup2-guest/run.sh with `command`. A guest that never finished booting or running (exit 3:
    seen once under heavy load) is tried once more; any other result is the test's."""
    env = {**os.environ, "ENGINE_GUEST_TIMEOUT": os.environ.get("ENGINE_GUEST_TIMEOUT", "600")}
    script = str(REPO / "tests" / "cgroup2-guest" / "run.sh")
    for _ in range(2):
        result = subprocess.run([script, *command], capture_output=True, text=True, timeout=700, cwd=cwd, env=env)
        if result.returncode != 3:
            break
    return result


GUEST_LANE_SKIP = pytest.mark.skipif(
    host.cgroup_layout() == "v2" or not host.guest_lane_on(),
    reason="this host is pure cgroup v2 itself: the guest's tests run here directly"
    if host.cgroup_layout() == "v2"
    else host.GUEST_OFF,
)
PLAIN_PYTEST = ["-p", "no:cacheprovider", "-o", "addopts="]  # no cache writes, no addopts from pyproject
_VERBOSE_LINE = re.compile(r"^(\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b(.*)$")


def collected_ids(test_file: Path) -> list[str]:
    """The node ids pytest collects from `test_file` on this host (parametrized ones expanded)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *PLAIN_PYTEST, str(test_file)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    ids = [line for line in result.stdout.splitlines() if "::" in line]
    assert result.returncode == 0 and ids, result.stdout[-3000:] + result.stderr[-2000:]
    return ids


def expect_guest_outcomes(test_file: Path, runs_in_guest: Callable[[str], bool]) -> None:
    """Run `test_file` in the cgroup v2 guest and require the exact outcome: every collected test whose
    function runs_in_guest() passed, and every other one was skipped. A test that skipped, failed or was not
    collected in the guest fails the lane (a lane that passes when everything inside skipped proves nothing)."""
    rel = str(test_file.resolve().relative_to(REPO))
    ids = collected_ids(test_file)
    expected = {i for i in ids if runs_in_guest(i.split("::", 1)[1].split("[", 1)[0])}
    assert expected, f"no test of {rel} is meant to run in the guest"
    command = [".venv/bin/python", "-m", "pytest", "-v", *PLAIN_PYTEST, rel]
    result = run_in_cgroup2_guest(command)
    report = result.stdout[-6000:] + result.stderr[-2000:]
    outcomes = {}
    for line in result.stdout.splitlines():
        if match := _VERBOSE_LINE.match(line.strip()):
            outcomes[match.group(1)] = f"{match.group(2)}{match.group(3)}"
    assert result.returncode == 0, report
    passed = {i for i, outcome in outcomes.items() if outcome.startswith("PASSED")}
    assert passed == expected, {
        "expected to pass but did not": {i: outcomes.get(i, "not run") for i in sorted(expected - passed)},
        "passed but expected to be skipped": sorted(passed - expected),
    }
    others = {i: o for i, o in outcomes.items() if i not in expected}
    assert set(outcomes) == set(ids) and all(o.startswith("SKIPPED") for o in others.values()), (others, report)


# Conformance checks that SKIPped inside a suite run (tests/integration/test_conformance.py adds them): lanes too.
NOT_JUDGED = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[NOT_JUDGED] = []


def skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    """What this run did not cover, and why: every skip reason (with how many tests it switched off), and the
    cgroup v2 guest lane when it is off, so that a green run says what it did not check."""
    reasons = Counter(skip_reason(r) for r in terminalreporter.stats.get("skipped", []))
    lines = [f"{count:4d} skipped: {reason}" for reason, count in sorted(reasons.items(), key=lambda i: i[0])]
    lines += [f"   conformance check not judged: {line}" for line in config.stash.get(NOT_JUDGED, [])]
    if not host.guest_lane_on() and not any(host.GUEST_ENV in reason for reason in reasons):
        lines.append(f"   not collected: {host.GUEST_OFF}")
    terminalreporter.section("lanes that did not run")
    for line in lines or ["none: every collected lane ran"]:
        terminalreporter.write_line(line)
