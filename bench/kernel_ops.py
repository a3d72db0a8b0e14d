"""The kernel operations a container's creation makes, each timed on its own (root): how much each costs with N
containers on the host, apart from any runtime. bench/scale_probe.py runs `kernel_ops(...)` in each of its phases.

Each sample forks a child that does what an init does up to its mounts, timing every step around the syscall
itself (no strace, no interpreter start): unshare of the namespaces a default `engine spec` config asks for, a
tmpfs, every cgroup v1 hierarchy mounted in the new cgroup namespace (as the config's /sys/fs/cgroup mount), sysfs
in the new network namespace, mqueue, and proc in a new pid namespace (one more fork). The parent makes a cgroup
per hierarchy beside the engine containers' own (engine/<id> below its cgroup: with N containers, N siblings),
moves the child in (cgroup.procs), and after the child exits removes them. Everything it makes is private: a
scratch directory of the caller's, cgroups named kernel-ops-<pid>-<n>.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from engine.linux.namespaces import (  # noqa: E402
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
)
from engine.linux.syscalls import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, mount, unshare  # noqa: E402

MS_REC, MS_PRIVATE, MS_BIND, MS_REMOUNT = 0x4000, 1 << 18, 4096, 32
SERIAL = itertools.count()  # cgroup names: unique across samples and phases in one process
STEPS = (
    "fork",
    "unshare net",
    "unshare mnt+cgroup+ipc+uts",
    "mount tmpfs",
    "mount cgroup (all v1)",
    "bind cgroup (all v1)",
    "mount sysfs",
    "mount mqueue",
    "unshare pid + fork",
    "mount proc",
    "mkdir cgroup (all)",
    "write cpuset.cpus+mems",
    "write cgroup.procs (all)",
    "child exit -> reaped",
    "rmdir cgroup (all)",
)


def v1_hierarchies() -> list[tuple[str, str]]:
    """(mount point, the options that name its controllers) of each cgroup v1 hierarchy on the host."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        dash = fields.index("-")
        if fields[dash + 1] != "cgroup":
            continue
        options = [o for o in fields[dash + 3].split(",") if o not in ("rw", "ro")]
        found.append((fields[4], ",".join(options)))
    return found


def own_cgroup(hierarchy: str, options: str) -> str:
    """Our cgroup in the hierarchy mounted at `hierarchy` (by its controllers in /proc/self/cgroup)."""
    wanted = set(options.split(","))
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers and set(controllers.split(",")) & wanted:
            return path
    return "/"


def _child(scratch: Path, hierarchies: list[tuple[str, str]], cgroups: list[str], report: int, go: int) -> None:
    times: dict[str, float] = {}

    def timed(name: str, call: Callable[[], None]) -> None:
        begin = time.perf_counter()
        call()
        times[name] = times.get(name, 0.0) + time.perf_counter() - begin

    os.read(go, 1)  # moved into its cgroups
    timed("unshare net", lambda: unshare(CLONE_NEWNET))
    timed("unshare mnt+cgroup+ipc+uts", lambda: unshare(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWIPC | CLONE_NEWUTS))
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    top = scratch / f"ops-{os.getpid()}"
    top.mkdir()
    timed("mount tmpfs", lambda: mount("tmpfs", str(top), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"))
    for name in (
        "sys",
        "mqueue",
        "proc",
        *(f"cg{i}" for i in range(len(hierarchies))),
        *(f"b{i}" for i in range(len(hierarchies))),
    ):
        (top / name).mkdir()
    flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    for i, (_, options) in enumerate(hierarchies):
        timed(
            "mount cgroup (all v1)",
            lambda i=i, options=options: mount("cgroup", str(top / f"cg{i}"), "cgroup", flags, options),
        )
    # The alternative that needs no new superblock: the container's own cgroup directory bound from the host's
    # hierarchy (what a runtime does without a cgroup namespace), then made read-only.
    for i, directory in enumerate(cgroups):

        def bind(directory: str = directory, target: str = str(top / f"b{i}")) -> None:
            mount(directory, target, None, MS_BIND | MS_REC)
            mount(None, target, None, MS_BIND | MS_REMOUNT | flags)

        timed("bind cgroup (all v1)", bind)
    timed("mount sysfs", lambda: mount("sysfs", str(top / "sys"), "sysfs", flags))
    timed("mount mqueue", lambda: mount("mqueue", str(top / "mqueue"), "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC))
    begin = time.perf_counter()
    unshare(CLONE_NEWPID)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.write(w, str(time.perf_counter() - begin).encode() + b" ")
        start = time.perf_counter()
        mount("proc", str(top / "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        os.write(w, str(time.perf_counter() - start).encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r, "rb") as results:
        forked, proc = results.read().split()
    times["unshare pid + fork"] = float(forked)
    times["mount proc"] = float(proc)
    os.write(report, json.dumps(times).encode())


def sample(scratch: Path, hierarchies: list[tuple[str, str]], n: int) -> dict[str, float]:
    report_r, report_w = os.pipe()
    go_r, go_w = os.pipe()
    cgroups = [
        os.path.join(
            mount_point,
            own_cgroup(mount_point, options).lstrip("/"),
            "engine",
            f"kernel-ops-{os.getpid()}-{next(SERIAL)}",
        )
        for mount_point, options in hierarchies
    ]
    begin = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(report_r)
            os.close(go_w)
            _child(scratch, hierarchies, cgroups, report_w, go_r)
            os._exit(0)
        except BaseException:
            import traceback

            traceback.print_exc()
            os._exit(1)
    times = {"fork": time.perf_counter() - begin}
    os.close(report_w)
    os.close(go_r)
    made: list[str] = []
    try:
        begin = time.perf_counter()
        for directory in cgroups:
            os.makedirs(os.path.dirname(directory), exist_ok=True)
            os.mkdir(directory)
            made.append(directory)
        times["mkdir cgroup (all)"] = time.perf_counter() - begin
        # cpuset: empty cpus/mems refuse a task (as engine, and runc, copied from the parent). Only the writes are
        # timed: cpuset v1 checks a new cpuset.cpus against every sibling's (validate_change), N of them.
        copies = []
        for directory in made:
            for name in ("cpuset.cpus", "cpuset.mems"):
                if os.path.exists(os.path.join(directory, name)):
                    copies.append((os.path.join(directory, name), Path(os.path.dirname(directory), name).read_bytes()))
        spent = 0.0
        for path, value in copies:
            fd = os.open(path, os.O_WRONLY)
            try:
                begin = time.perf_counter()
                os.write(fd, value)
                spent += time.perf_counter() - begin
            finally:
                os.close(fd)
        times["write cpuset.cpus+mems"] = spent
        begin = time.perf_counter()
        for directory in made:
            with open(os.path.join(directory, "cgroup.procs"), "w") as f:
                f.write(str(pid))
        times["write cgroup.procs (all)"] = time.perf_counter() - begin
        os.write(go_w, b"g")
        os.close(go_w)
        data = b""
        while chunk := os.read(report_r, 65536):
            data += chunk
        os.close(report_r)
        begin = time.perf_counter()
        _, status = os.waitpid(pid, 0)
        times["child exit -> reaped"] = time.perf_counter() - begin
        pid = 0
        if status != 0 or not data:
            raise RuntimeError(f"kernel_ops child failed (status {status})")
        times.update(json.loads(data))
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        begin = time.perf_counter()
        for directory in reversed(made):
            for _ in range(200):
                try:
                    os.rmdir(directory)
                    break
                except OSError:
                    time.sleep(0.005)
        times["rmdir cgroup (all)"] = time.perf_counter() - begin
    return times


def kernel_ops(scratch: Path, samples: int) -> dict[str, list[float]]:
    """`samples` runs of every step: step -> seconds per sample."""
    hierarchies = v1_hierarchies()
    out: dict[str, list[float]] = {step: [] for step in STEPS}
    for n in range(samples):
        for step, seconds in sample(scratch, hierarchies, n).items():
            out[step].append(seconds)
    return out


if __name__ == "__main__":
    import tempfile

    from bench.stats import median

    with tempfile.TemporaryDirectory() as tmp:
        for step, values in kernel_ops(Path(tmp), int(sys.argv[1]) if len(sys.argv) > 1 else 10).items():
            print(f"{step}: {median(values) * 1000:.3f} ms")
