"""Driving a runc-compatible runtime binary: one private --root per check, timeouts everywhere, cleanup always."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.bundle import base_config, write_bundle
from conformance.registry import CheckFailed, expect

# Every runtime command is bounded: a hung runtime must fail one check, not hang the suite.
COMMAND_TIMEOUT = 15.0
# How long to wait for a container to reach an expected status or for a marker file to appear.
WAIT_TIMEOUT = 5.0
# How long to give a program that must NOT run the chance to (wrongly) leave its marker.
SETTLE = 0.3
POLL = 0.02


@dataclass
class Result:
    argv: list[str]
    shown: str  # the command as shown in reports: runtime basename + args, without --root
    rc: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out

    def describe(self) -> str:
        if self.timed_out:
            return f"`{self.shown}` timed out after {self.seconds:.0f}s"
        last = self.stderr.strip().splitlines()[-1:] or self.stdout.strip().splitlines()[-1:] or [""]
        return f"`{self.shown}` exited {self.rc}" + (f": {last[0][:160]}" if last[0] else "")


class Runtime:
    """A runc-compatible runtime binary: `<path> --root <dir> <command> ...`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = os.path.basename(path)

    def run(self, root: Path, *args: str, cwd: Path | None = None, timeout: float = COMMAND_TIMEOUT) -> Result:
        argv = [self.path, "--root", str(root), *args]
        shown = " ".join([self.name, *(a if a else "''" for a in args)])
        # Files, not pipes: a created container inherits the runtime's stdio when terminal is false, and a
        # pipe held open by a still-running container would make reading it block until the container dies.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            began = time.monotonic()
            # A session of its own so that a timed-out runtime and whatever it forked can be killed together.
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd, start_new_session=True
            )
            timed_out = False
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
            seconds = time.monotonic() - began
            out.seek(0)
            err.seek(0)
            return Result(
                argv,
                shown,
                rc,
                out.read().decode(errors="replace"),
                err.read().decode(errors="replace"),
                seconds,
                timed_out,
            )


def pid_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie (a reaped-late container init counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def start_time(pid: int) -> str:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks): with the pid, identifies one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def in_other_pidns(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    except OSError:
        return False


def mounts_under(path: Path) -> list[str]:
    """Mount points in the suite's own mount namespace at or below `path` (a leak if the runtime left any)."""
    prefix = str(path)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return found


def cgroup_dirs(relpath: str) -> list[Path]:
    """Existing cgroup directories for cgroupsPath `relpath` in any mounted hierarchy (v1 or v2)."""
    rel = relpath.strip("/")
    dirs = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[0] in ("cgroup", "cgroup2"):
            candidate = Path(left.split()[4]) / rel
            if candidate.is_dir():
                dirs.append(candidate)
    return dirs


def _cgroup_mounts() -> tuple[list[tuple[Path, set[str]]], Path | None]:
    """(v1 mount point, its controllers incl. name=...) pairs and the cgroup2 mount point, from mountinfo."""
    v1: list[tuple[Path, set[str]]] = []
    v2 = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, _, options = right.split()[:3]
        point = Path(left.split()[4])
        if fstype == "cgroup":
            v1.append((point, set(options.split(","))))
        elif fstype == "cgroup2" and v2 is None:
            v2 = point
    return v1, v2


def process_cgroup_dirs(pid: int) -> list[Path]:
    """The cgroup directories `pid` is in, in every hierarchy, except those the suite itself is in."""

    def read(who: int | str) -> dict[str, str]:
        entries = {}
        for line in Path(f"/proc/{who}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            entries[controllers] = path
        return entries

    try:
        theirs = read(pid)
    except OSError:
        return []
    ours = read("self")
    v1, v2 = _cgroup_mounts()
    dirs = []
    for controllers, path in theirs.items():
        if ours.get(controllers) == path:
            continue  # not the container's own cgroup: shared with the suite
        if controllers == "":
            base = v2
        else:
            wanted = set(controllers.split(","))
            base = next((point for point, opts in v1 if wanted <= opts), None)
        if base is not None and (base / path.lstrip("/")).is_dir():
            dirs.append(base / path.lstrip("/"))
    return dirs


@dataclass
class Ctx:
    """Everything one check needs: its own temp dir, runtime --root, shared marker dir and container ids."""

    runtime: Runtime
    rootfs: Path
    dir: Path
    log: list[Result] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # every id passed to create, for cleanup
    pids: dict[int, str] = field(default_factory=dict)  # container pid `state` reported -> its start time
    cgroups: set[Path] = field(default_factory=set)  # cgroup directories those processes were in
    pid_namespaces: dict[str, int] = field(default_factory=dict)  # their pid namespaces -> an fd holding each
    cgroups_paths: set[str] = field(default_factory=set)  # absolute linux.cgroupsPath of the check's bundles

    def __post_init__(self) -> None:
        self.root = self.dir / "root"  # the runtime's private --root: the suite never sees other containers
        self.shared = self.dir / "shared"  # bind-mounted at /tmp in the container
        self.root.mkdir(parents=True)
        self.shared.mkdir()

    # -- bundles and ids ------------------------------------------------------------------------------

    @staticmethod
    def new_id() -> str:
        """A container id unique on this host."""
        return f"conformance-{secrets.token_hex(6)}"

    def bundle(
        self,
        args: list[str] | None,
        *,
        name: str = "bundle",
        annotations: dict[str, str] | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> Path:
        config = base_config(self.rootfs, self.shared, args, annotations=annotations)
        if edit is not None:
            edit(config)
        path = (config.get("linux") or {}).get("cgroupsPath")
        if isinstance(path, str) and path.startswith("/") and path.strip("/"):
            self.cgroups_paths.add(path)
        return write_bundle(self.dir / name, config)

    def marker(self, name: str) -> Path:
        """Host path of a file the container writes as /tmp/<name>."""
        return self.shared / name

    # -- runtime commands -----------------------------------------------------------------------------

    def rt(self, *args: str, cwd: Path | None = None) -> Result:
        result = self.runtime.run(self.root, *args, cwd=cwd)
        self.log.append(result)
        return result

    def create(self, cid: str, bundle: Path | str, *, cwd: Path | None = None) -> Result:
        self.ids.append(cid)
        return self.rt("create", "--bundle", str(bundle), cid, cwd=cwd)

    def must(self, result: Result, what: str) -> Result:
        expect(result.ok, f"{what}: {result.describe()}")
        return result

    def must_fail(self, result: Result, what: str) -> Result:
        expect(not result.ok and not result.timed_out, f"{what}: `{result.shown}` succeeded, expected an error")
        return result

    def created(self, args: list[str] | None, **bundle_kw: Any) -> tuple[str, Path, dict[str, Any]]:
        """Create a container (must succeed); return its id, bundle and state."""
        cid = self.new_id()
        bundle = self.bundle(args, **bundle_kw)
        self.must(self.create(cid, bundle), "create")
        return cid, bundle, self.state(cid)

    def running(self, args: list[str], **bundle_kw: Any) -> tuple[str, Path, dict[str, Any]]:
        """Create and start a container (must succeed); return its id, bundle and state once running."""
        cid, bundle, _ = self.created(args, **bundle_kw)
        self.must(self.rt("start", cid), "start")
        return cid, bundle, self.wait_status(cid, "running")

    def state(self, cid: str) -> dict[str, Any]:
        result = self.must(self.rt("state", cid), "state")
        try:
            state = json.loads(result.stdout)
        except ValueError as err:
            raise CheckFailed(f"`{result.shown}` printed invalid JSON: {err}") from None
        expect(isinstance(state, dict), f"`{result.shown}` printed {type(state).__name__}, not an object")
        self.observe(state)
        return state

    def exists(self, cid: str) -> bool:
        """Whether `state <cid>` succeeds, i.e. the runtime still knows the container."""
        return self.rt("state", cid).ok

    def wait_status(self, cid: str, status: str, timeout: float = WAIT_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(cid)
            if state.get("status") == status:
                return state
            if time.monotonic() > deadline:
                raise CheckFailed(f"status stayed {state.get('status')!r}, expected {status!r} within {timeout}s")
            time.sleep(POLL)

    def wait_file(self, path: Path, timeout: float = WAIT_TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL)
        # `echo x > file` creates the file before it writes: give the write a moment, so that a check reading
        # the file right away does not see it empty (a race seen once in CI). Empty markers stay allowed.
        settle = time.monotonic() + 0.5
        while path.stat().st_size == 0 and time.monotonic() < settle:
            time.sleep(POLL)
        return True

    def wait_gone(self, pid: int, timeout: float = WAIT_TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while pid_alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL)
        return True

    # -- what the runtime made, and cleanup -------------------------------------------------------------

    def observe(self, state: dict[str, Any]) -> None:
        """Note a container process `state` reported: its pid and start time, the cgroups it is in (where the
        suite is not) and its pid namespace (held open, so that its number cannot be reused meanwhile)."""
        pid = state.get("pid")
        if type(pid) is not int or pid <= 0 or pid in self.pids or not (began := start_time(pid)):
            return
        self.pids[pid] = began
        self.cgroups.update(process_cgroup_dirs(pid))
        with contextlib.suppress(OSError):
            ns = os.readlink(f"/proc/{pid}/ns/pid")
            fd = os.open(f"/proc/{pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
            if start_time(pid) == began and in_other_pidns(pid) and ns not in self.pid_namespaces:
                self.pid_namespaces[ns] = fd
            else:
                os.close(fd)

    def cleanup(self) -> list[str]:
        """Force-delete every container this check created, then look for whatever the runtime made for them
        that is still there; return one problem per leftover (each is a failure of the check), after removing
        what it can. Only this check's own --root, ids, processes and cgroups are looked at: other runtimes'
        containers may be running on the machine.

        What the runtime made: the container processes `state` reported (pid + start time), any process in
        their pid namespaces, the cgroup directories they were in and any absolute linux.cgroupsPath the check's
        bundles named, state entries in --root, and (see cli.run_one) host mounts under the check's directory.
        """
        problems = []
        for cid in dict.fromkeys(self.ids):
            result = self.runtime.run(self.root, "state", cid)  # note its process, cgroups, namespace first
            if not result.ok:
                continue  # never created, or already deleted by the check
            with contextlib.suppress(ValueError, AttributeError):
                self.observe(json.loads(result.stdout))
            deleted = self.runtime.run(self.root, "delete", "--force", cid)
            if not self.runtime.run(self.root, "state", cid).ok:
                continue
            # Still there: try the long way once.
            problems.append(f"`delete --force {cid}` left the container behind ({deleted.describe()})")
            self.runtime.run(self.root, "kill", cid, "KILL")
            self.runtime.run(self.root, "delete", "--force", cid)
        # A container the check did not know it made (say, create without an id that still succeeded) shows up
        # as a state entry in --root; runtime-private dot files do not count. Ask the runtime for its ids.
        if self.root.is_dir() and any(not n.startswith(".") for n in os.listdir(self.root)):
            listed = self.runtime.run(self.root, "list", "-q")
            for cid in listed.stdout.split() if listed.ok else []:
                self.runtime.run(self.root, "delete", "--force", cid)
                problems.append(f"unexpected container {cid!r} left in --root; force-deleted it")
        if self.root.is_dir() and (entries := sorted(n for n in os.listdir(self.root) if not n.startswith("."))):
            problems.append(f"state left in --root: {', '.join(entries)}")
        # The container processes were started (through the runtime) by this check: never leak one.
        for pid, began in self.pids.items():
            # Same pid and same start time: the very process `state` reported, not a recycled pid.
            if pid_alive(pid) and start_time(pid) == began and in_other_pidns(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                problems.append(f"container process {pid} survived `delete --force`; killed it")
        for pid, ns in processes_in(self.pid_namespaces):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            problems.append(f"process {pid} of the container's pid namespace {ns} survived; killed it")
        left = {d for d in self.cgroups if d.is_dir()}
        left.update(d for path in self.cgroups_paths for d in cgroup_dirs(path))
        if left:
            problems.append(f"cgroups left: {', '.join(f'{d} (pids {cgroup_procs(d)})' for d in sorted(left))}")
            remove_cgroups(left)
        for fd in self.pid_namespaces.values():
            os.close(fd)
        self.pid_namespaces.clear()
        return problems


def processes_in(namespaces: dict[str, int]) -> list[tuple[int, str]]:
    """(pid, namespace) of every living (not zombie) process in one of the given pid namespaces."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                ns = os.readlink(f"/proc/{name}/ns/pid")
                if ns in namespaces and pid_alive(int(name)):
                    found.append((int(name), ns))
    return found


def cgroup_procs(directory: Path) -> list[int]:
    try:
        return [int(p) for p in (directory / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def remove_cgroups(dirs: set[Path]) -> None:
    """Kill what is in them and remove them, deepest first (after a leak was recorded: the next check starts
    clean)."""
    for directory in dirs:
        for pid in cgroup_procs(directory):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + WAIT_TIMEOUT
    for directory in sorted(dirs, key=lambda d: len(d.parts), reverse=True):
        while directory.is_dir() and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                directory.rmdir()
            time.sleep(POLL)
