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
