"""Integration fixtures: a real engine (the venv's console script) driving real containers, as root.

Every test gets its own --root and bundle directory. After each test, `delete --force` goes over every id the
test made, and then nothing engine made for THIS test may be left (never a look at global lists: other people's
containers run on this machine at the same time):

- the state root holds no container directory;
- no mount of the test's mount namespace sits on the bundle directory, the --root or the rootfs;
- no cgroup directory of the test's containers exists in any hierarchy: those the state.json `cgroups` record
  named while a container existed, the default `engine/<id>` (below the runtime's own cgroup; on cgroup2 below
  its parent, see engine/cgroups/layout.py) and every linux.cgroupsPath a bundle of the test named;
- no process of the test's containers lives: an init seen in state.json (held by a pidfd, so a reused pid is
  never mistaken for it), any process in a pid namespace such an init made (held open, so its number is not
  reused either), any process in the cgroups above.

A started container that survives `delete --force` has exec'd its program by then (`sleep 60`, no id in its
command line): only what engine made finds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import select
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.spec.default import default_config

ENGINE = str(Path(sys.executable).with_name("engine"))


def _emulated() -> bool:
    """A qemu guest without KVM (tests/cgroup2-guest): every command is many times slower there."""
    with contextlib.suppress(OSError):
        return "QEMU Virtual CPU" in Path("/proc/cpuinfo").read_text()
    return False


# Seconds an engine command may take: generous (a loaded 2-core machine), more so under emulation.
COMMAND_TIMEOUT = 240.0 if _emulated() else 30.0

pytestmark = pytest.mark.root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="integration tests need root (namespaces, mounts, cgroups): not running as root")
        for item in items:
            if "integration" in str(item.fspath):
                item.add_marker(skip)


class Footprint:
    """What engine made for one container, as state.json showed it while the container existed."""

    def __init__(self) -> None:
        self.cgroup_dirs: set[str] = set()
        self.inits: dict[int, int] = {}  # init pid -> pidfd
        self.pid_namespaces: dict[str, int] = {}  # "pid:[inode]" -> an fd holding the namespace

    def observe(self, record: dict[str, Any]) -> None:
        cgroups = record.get("cgroups") or {}
        self.cgroup_dirs.update(str(d) for d in (cgroups.get("dirs") or {}).values())
        pid = record.get("pid")
        if not isinstance(pid, int) or pid <= 0 or pid in self.inits:
            return
        if _start_time(pid) != record.get("pid_start_time"):
            return  # already gone (or the pid is someone else's by now)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return
        if _start_time(pid) != record.get("pid_start_time"):  # the pid was reused before we held it
            os.close(pidfd)
            return
        self.inits[pid] = pidfd
        with contextlib.suppress(OSError):
            ns = os.readlink(f"/proc/{pid}/ns/pid")
            if ns != os.readlink("/proc/self/ns/pid") and ns not in self.pid_namespaces:
                self.pid_namespaces[ns] = os.open(f"/proc/{pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)

    def live_inits(self) -> list[int]:
        return [pid for pid, pidfd in self.inits.items() if not select.select([pidfd], [], [], 0)[0]]

    def close(self) -> None:
        for fd in [*self.inits.values(), *self.pid_namespaces.values()]:
            os.close(fd)
        self.inits.clear()
        self.pid_namespaces.clear()


class Engine:
    """Runs `engine --root <private root> ...` and keeps track of the ids it created, for cleanup, and of what
    engine made for them (state.json read after every command), for the leak check."""

    def __init__(self, root: Path, bundle_dir: Path, rootfs: Path) -> None:
        self.root = root
        self.bundle_dir = bundle_dir
        self.rootfs = rootfs
        self.ids: list[str] = []
        self.footprints: dict[str, Footprint] = {}

    def __call__(
        self, *args: str, check: bool = False, timeout: float = COMMAND_TIMEOUT, **kw: Any
    ) -> subprocess.CompletedProcess:
        # Files, not pipes: a created container's init inherits stdout/stderr and would hold a pipe open.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            code = subprocess.run(
                [ENGINE, "--root", str(self.root), *args], stdout=out, stderr=err, timeout=timeout, **kw
            ).returncode
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(args, code, out.read(), err.read())
        self.observe()
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

    # -- what engine made -------------------------------------------------------------------------------

    def observe(self) -> None:
        """Note what state.json says of each container of the test that exists now (a cheap read per id)."""
        for container_id in self._container_ids():
            try:
                record = json.loads((self.root / container_id / "state.json").read_bytes())
            except (OSError, ValueError):
                continue
            if isinstance(record, dict):
                self.footprints.setdefault(container_id, Footprint()).observe(record)

    def _container_ids(self) -> list[str]:
        listed = [n for n in os.listdir(self.root) if not n.startswith(".")] if self.root.is_dir() else []
        return list(dict.fromkeys([*self.ids, *listed]))

    def cgroup_dirs(self) -> set[str]:
        """Every cgroup directory the test's containers had or would have had."""
        dirs = {d for fp in self.footprints.values() for d in fp.cgroup_dirs}
        ids = self._container_ids() + list(self.footprints)
        dirs.update(d for cid in ids for d in cgroup_candidates(f"engine/{cid}"))
        for config in self.bundle_dir.glob("**/config.json"):
            with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
                path = json.loads(config.read_text()).get("linux", {}).get("cgroupsPath")
                if isinstance(path, str) and path.strip("/"):
                    dirs.update(cgroup_candidates(path))
        return dirs

    def leftovers(self) -> dict[str, list[str]]:
        """Whatever engine made for this test that still exists (empty lists: nothing)."""
        self.observe()
        found: dict[str, list[str]] = {
            "state directories": [n for n in os.listdir(self.root) if not n.startswith(".")]
            if self.root.is_dir()
            else [],
            "mounts": leftover_mounts(self.bundle_dir, self.root, self.rootfs),
            "cgroups": [],
            "processes": [],
        }
        for directory in sorted(self.cgroup_dirs()):
            if os.path.isdir(directory):
                procs = _cgroup_procs(directory)
                found["cgroups"].append(f"{directory} (processes: {procs or 'none'})")
                found["processes"] += [f"{pid} in {directory}: {_cmdline(pid)}" for pid in procs]
        for container_id, footprint in self.footprints.items():
            found["processes"] += [f"init {pid} of {container_id}: {_cmdline(pid)}" for pid in footprint.live_inits()]
            if footprint.pid_namespaces:
                found["processes"] += [
                    f"{pid} in {ns} of {container_id}: {_cmdline(pid)}"
                    for pid, ns in processes_in(footprint.pid_namespaces)
                ]
        found["processes"] = list(dict.fromkeys(found["processes"]))
        return found

    def remove_leftovers(self) -> None:
        """After a leak was recorded: kill what lives and remove the cgroups, so later tests start clean."""
        pids = {pid for fp in self.footprints.values() for pid in fp.live_inits()}
        for footprint in self.footprints.values():
            pids.update(pid for pid, _ in processes_in(footprint.pid_namespaces))
        dirs = sorted(self.cgroup_dirs(), key=len, reverse=True)
        for directory in dirs:
            pids.update(_cgroup_procs(directory))
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        for directory in dirs:
            while os.path.isdir(directory) and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
                time.sleep(0.02)

    def close(self) -> None:
        for footprint in self.footprints.values():
            footprint.close()


def _start_time(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "(gone)"


def _cgroup_procs(directory: str) -> list[int]:
    try:
        return [int(p) for p in Path(directory, "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def processes_in(namespaces: Iterable[str]) -> list[tuple[int, str]]:
    """(pid, namespace) of every living process (zombies are dead) in one of the given pid namespaces."""
    wanted = set(namespaces)
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                ns = os.readlink(f"/proc/{name}/ns/pid")
                if ns in wanted and Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    found.append((int(name), ns))
    return found


def _cgroup_hierarchies() -> list[tuple[str, str, str]]:
    """(mount point, mount root, our own cgroup there) for every cgroup hierarchy of this process."""
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        own[controllers] = path
    hierarchies = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, (fstype, _source, options) = left.split(), right.split()[:3]
        if fstype == "cgroup2":
            key = ""
        elif fstype == "cgroup":
            opts = set(options.split(","))
            key = next((k for k in own if k and set(k.split(",")) <= opts), "")
            if not key:
                continue
        else:
            continue
        if key in own:
            hierarchies.append((fields[4], fields[3], own[key]))
    return hierarchies


def cgroup_candidates(cgroups_path: str) -> set[str]:
    """Where a cgroupsPath lands in each hierarchy: absolute under the mount point; relative below our own cgroup
    (on cgroup2 below its parent, engine/cgroups/layout.py). Both readings, for a relative one: a leak either
    way is a leak."""
    dirs = set()
    rel = posixpath.normpath("/" + cgroups_path).lstrip("/")
    for point, root, own in _cgroup_hierarchies():
        dirs.add(posixpath.join(point, rel))
        if not cgroups_path.startswith("/"):
            inside = posixpath.relpath(own, root) if own.startswith(root) else "."
            base = posixpath.normpath(posixpath.join(point, inside))
            dirs.add(posixpath.join(base, rel))
            if base != point:
                dirs.add(posixpath.join(posixpath.dirname(base), rel))
    return dirs


def leftover_mounts(*paths: Path) -> list[str]:
    """Mounts (in this mount namespace) naming one of `paths`: mounted at or below it, or a bind of it or of
    something below it (mountinfo's root field, for the host's root filesystem)."""
    prefixes = [str(p).rstrip("/") for p in paths]

    def under(path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in prefixes)

    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" - ", 1)[0].split()
            root, point = (field.replace("\\040", " ") for field in fields[3:5])
            if under(point) or under(root):
                found.append(line.strip())
    return found


def leftover_processes(ids: list[str]) -> list[str]:
    """Processes whose command line names one of `ids` (an engine command still at work on it)."""
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
    try:
        yield eng
        for container_id in eng.ids:
            eng("delete", "--force", container_id)
        leftovers = eng.leftovers()
        leftovers["processes"] += leftover_processes(eng.ids)
        if any(leftovers.values()):
            for container_id in eng._container_ids():  # ids the test did not make with new_id() too
                eng("delete", "--force", container_id)
            eng.remove_leftovers()
        assert not any(leftovers.values()), f"left behind: {leftovers}"
    finally:
        eng.close()
