"""Shared fixtures: where the repo, the spec and the busybox rootfs are."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

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
