"""The hostile-bundle tests (issue #7): each test is one attack, named after its CVE, run as root against engine and,
where the attack means something there, against runc 1.1.5 (/usr/sbin/runc, the reference) with the same bundle.

`runtime` is parametrized over both. A test for an attack runc here falls to calls runtime.falls(reason): for runc
that makes the test an expected failure (strict: if runc stops falling to it, the test says so). RUNTIME=engine
or RUNTIME=/usr/sbin/runc runs one of them only.

Every runtime runs with a private --root; after each test nothing may be left: no state, no mount under the test's
directory, no process of its containers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.spec.default import default_config
from tests.integration.conftest import leftover_processes

ENGINE = str(Path(sys.executable).with_name("engine"))
RUNC = "/usr/sbin/runc"

Edit = Callable[[dict[str, Any]], None]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="the security tests need root (namespaces, mounts, cgroups)")
        for item in items:
            if "tests/security" in str(item.fspath) and "test_unit" not in str(item.fspath):
                item.add_marker(skip)


class Runtime:
    """One runtime's command line with a private --root, and the ids it created (for cleanup)."""

    def __init__(self, name: str, binary: str, root: Path, tmp: Path, rootfs: Path, request: pytest.FixtureRequest):
        self.name = name
        self.binary = binary
        self.root = root
        self.tmp = tmp
        self.rootfs = rootfs
        self.request = request
        self.ids: list[str] = []
        self.count = 0

    @property
    def is_runc(self) -> bool:
        return self.name == "runc"

    def falls(self, reason: str) -> None:
        """runc 1.1.5 falls to this attack: for runc the test is an expected failure (strict)."""
        if self.is_runc:
            self.request.node.add_marker(pytest.mark.xfail(reason=f"runc 1.1.5 falls to it: {reason}", strict=True))

    def __call__(
        self,
        *args: str,
        timeout: float = 60,
        env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
        **kw: Any,
    ) -> subprocess.CompletedProcess[str]:
        """The runtime with args; prefix: a command that execs the rest (e.g. a shell that opens an fd first)."""
        # Files, not pipes: a created container's init inherits stdout/stderr and would hold a pipe open.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            code = subprocess.run(
                [*prefix, self.binary, "--root", str(self.root), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=timeout,
                env=env,
                **kw,
            ).returncode
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(list(args), code, out.read(), err.read())

    def new_id(self) -> str:
        container_id = f"sec-{uuid.uuid4().hex[:10]}"
        self.ids.append(container_id)
        return container_id

    def config(self, args: list[str], *, rootfs: Path | None = None, edit: Edit | None = None) -> dict[str, Any]:
        """`engine spec`'s default config (runc's too), which runc 1.1.5 accepts as 1.0.2-dev."""
        config = default_config(args, terminal=False)
        config["ociVersion"] = "1.0.2-dev"
        config["root"] = {"path": str(rootfs or self.rootfs), "readonly": rootfs is None}
        if edit is not None:
            edit(config)
        return config

    def bundle(self, config: dict[str, Any]) -> Path:
        self.count += 1
        bundle = self.tmp / f"bundle-{self.name}-{self.count}"
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    def run(self, config: dict[str, Any], *flags: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self("run", *flags, "--bundle", str(self.bundle(config)), self.new_id(), **kw)

    def create(self, config: dict[str, Any], *flags: str, **kw: Any) -> tuple[str, subprocess.CompletedProcess[str]]:
        container_id = self.new_id()
        return container_id, self("create", *flags, "--bundle", str(self.bundle(config)), container_id, **kw)

    def state(self, container_id: str) -> dict[str, Any]:
        result = self("state", container_id)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """engine's contract for bad input: a non-zero exit and exactly one line on stderr, no traceback."""
    assert result.returncode != 0, f"expected a failure, got success: {result.stdout}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def _leftover_mounts(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if f" {path}" in line]


def _cgroup_dirs(container_id: str) -> list[str]:
    """Where engine's default cgroupsPath (engine/<id>, under the caller's cgroup) puts the id, per hierarchy."""
    found = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in (controllers.split(",")[0].removeprefix("name="), "unified"):
                for top in (f"/sys/fs/cgroup/{name}", "/sys/fs/cgroup"):
                    candidate = f"{top}{path.rstrip('/')}/engine/{container_id}"
                    if os.path.isdir(candidate):
                        found.append(candidate)
    return sorted(set(found))


def leftovers(runtime: Runtime, tmp: Path, container_id: str) -> dict[str, list[str]]:
    """What a container that is gone left behind: its state directory (or temp files in --root), mounts under
    the test's directory, processes, cgroups. Empty when nothing is left."""
    found = {
        "state": [n for n in os.listdir(runtime.root) if n == container_id or n.endswith(".tmp")]
        if runtime.root.exists()
        else [],
        "mounts": _leftover_mounts(tmp),
        "processes": leftover_processes([container_id]),
        "cgroups": _cgroup_dirs(container_id),
    }
    return {key: value for key, value in found.items() if value}


def _runtimes() -> list[Any]:
    chosen = os.environ.get("RUNTIME")
    params = []
    for name, binary in (("engine", ENGINE), ("runc", RUNC)):
        if chosen and chosen not in (name, binary):
            continue
        marks = [] if os.access(binary, os.X_OK) else [pytest.mark.skip(reason=f"{binary} is not installed")]
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def _make_runtime(name: str, request: pytest.FixtureRequest, tmp_path: Path, rootfs: Path) -> Iterator[Runtime]:
    binary = ENGINE if name == "engine" else RUNC
    rt = Runtime(name, binary, tmp_path / f"{name}-root", tmp_path, rootfs, request)
    yield rt
    for container_id in rt.ids:
        rt("delete", "--force", container_id)
    leftovers = {
        "state": [n for n in os.listdir(rt.root) if not n.startswith(".")] if rt.root.exists() else [],
        "mounts": _leftover_mounts(tmp_path),
        "processes": leftover_processes(rt.ids),
    }
    assert not any(leftovers.values()), f"left behind: {leftovers}"


@pytest.fixture(params=_runtimes())
def runtime(request: pytest.FixtureRequest, tmp_path: Path, rootfs: Path) -> Iterator[Runtime]:
    """engine, then runc: the same attack against both."""
    yield from _make_runtime(request.param, request, tmp_path, rootfs)


@pytest.fixture
def engine(request: pytest.FixtureRequest, tmp_path: Path, rootfs: Path) -> Iterator[Runtime]:
    """engine alone: for attacks on how engine itself works (its interpreter, its state directory)."""
    if os.environ.get("RUNTIME") not in (None, "", "engine", ENGINE):
        pytest.skip("an engine-only test (RUNTIME selects another runtime)")
    yield from _make_runtime("engine", request, tmp_path, rootfs)


def bind(source: Path | str, destination: str, *options: str) -> dict[str, Any]:
    return {"destination": destination, "type": "bind", "source": str(source), "options": ["rbind", *options]}


def userns(config: dict[str, Any], size: int = 65536, host: int = 0) -> None:
    """A user namespace mapping container ids 0.. to host ids host.. (host 0: root stays root, files stay readable)."""
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": host, "size": size}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": host, "size": size}]
