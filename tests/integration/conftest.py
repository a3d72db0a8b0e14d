"""Integration fixtures: a real engine (the venv's console script) driving real containers, as root.

Every test gets its own --root and bundle directory; after each test we check that nothing was left behind:
no state directory, no mount under the bundle or rootfs, no process of the test's containers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.spec.default import default_config

ENGINE = str(Path(sys.executable).with_name("engine"))

pytestmark = pytest.mark.root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="integration tests need root (namespaces, mounts, cgroups)")
        for item in items:
            if "integration" in str(item.fspath):
                item.add_marker(skip)


class Engine:
    """Runs `engine --root <private root> ...` and keeps track of the ids it created, for cleanup."""

    def __init__(self, root: Path, bundle_dir: Path, rootfs: Path) -> None:
        self.root = root
        self.bundle_dir = bundle_dir
        self.rootfs = rootfs
        self.ids: list[str] = []

    def __call__(self, *args: str, check: bool = False, timeout: float = 30, **kw: Any) -> subprocess.CompletedProcess:
        # Files, not pipes: a created container's init inherits stdout/stderr and would hold a pipe open.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            code = subprocess.run(
                [ENGINE, "--root", str(self.root), *args], stdout=out, stderr=err, timeout=timeout, **kw
            ).returncode
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(args, code, out.read(), err.read())
        if check and result.returncode != 0:
            raise AssertionError(f"engine {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def new_id(self) -> str:
        container_id = f"t-{uuid.uuid4().hex[:10]}"
        self.ids.append(container_id)
        return container_id

    def bundle(self, args: list[str], *, name: str = "bundle", **overrides: Any) -> Path:
        """A bundle dir with config.json: `engine spec`'s default, no terminal, the busybox rootfs read-only."""
        bundle = self.bundle_dir / name
        bundle.mkdir(exist_ok=True)
        config = default_config(args, terminal=False)
        config["root"] = {"path": str(self.rootfs), "readonly": True}
        for key, value in overrides.items():
            config[key] = value
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    def state(self, container_id: str) -> dict[str, Any]:
        result = self("state", container_id, check=True)
        return json.loads(result.stdout)


def leftover_mounts(*paths: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if any(f" {p}" in line for p in paths)]


def leftover_processes(ids: list[str]) -> list[str]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(f" {i}" in cmdline for i in ids) and "pytest" not in cmdline:
            found.append(f"{name}: {cmdline}")
    return found


@pytest.fixture
def engine(tmp_path: Path, rootfs: Path) -> Iterator[Engine]:
    root = tmp_path / "root"
    eng = Engine(root, tmp_path, rootfs)
    yield eng
    for container_id in eng.ids:
        eng("delete", "--force", container_id)
    leftovers = {
        "state directories": [n for n in os.listdir(root) if not n.startswith(".")] if root.exists() else [],
        "mounts": leftover_mounts(tmp_path),
        "processes": leftover_processes(eng.ids),
    }
    assert not any(leftovers.values()), f"left behind: {leftovers}"
