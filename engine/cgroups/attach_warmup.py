"""Start the kernel's wait for an RCU grace period before `engine create` moves its child into the cgroups.

A write to cgroup.procs takes cgroup_threadgroup_rwsem for writing, whose rcu_sync first waits for an RCU grace
period (5-15 ms on this machine, asleep, with cgroup_mutex held) unless another write did so less than about a grace
period ago. create's first cgroup.procs write paid it on every create (bench/README.md, phase 2), as runc's does.

So create starts such a write at once, in a thread (a blocking write releases the GIL): its own pid into the cgroup
it is already in, which moves nothing. While the thread waits, the main thread validates the config and forks;
its first cgroup operation then waits for the same grace period instead of starting a new one, and the write of
the child's pid 5-20 ms later finds the switch made (0.2 ms instead of ~10: tests/integration/
test_attach_warmup.py). Later than that, the real write pays as before; nothing here can fail the caller (no
permission, no cgroup mount found: nothing happens).
"""

from __future__ import annotations

import _thread
import os


def start() -> tuple[str, str] | None:
    """Begin the no-op write in a thread of its own; returns at once. The file is found and opened here: the thread
    runs one blocking write, which releases the GIL, so it never makes the main thread wait for the GIL's switch
    interval (5 ms) while it parses.

    Returns the texts of /proc/self/cgroup and /proc/self/mountinfo it read (None if it could not), for create to
    detect the host's cgroup layout from (engine.cgroups.layout.detect_from) instead of reading them again."""
    try:
        texts = _read("/proc/self/cgroup"), _read("/proc/self/mountinfo")
    except (OSError, ValueError):  # not UTF-8: layout.detect reads them itself and says what is wrong
        return None
    try:
        path = procs_file(*texts)
        if path is None:
            return texts
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except (OSError, ValueError, IndexError):  # no permission, no cgroup mount found: nothing to save
        return texts
    try:
        _thread.start_new_thread(_write, (fd, str(os.getpid()).encode()))
    except RuntimeError:  # no thread to be had: the first real write pays the wait, as it always did
        os.close(fd)
    return texts


def own_procs_file() -> str | None:
    """The cgroup.procs of the cgroup this process is in, in the first mounted hierarchy it can be found in."""
    return procs_file(_read("/proc/self/cgroup"), _read("/proc/self/mountinfo"))


def procs_file(proc_cgroup: str, mountinfo: str) -> str | None:
    """procs_file(/proc/self/cgroup, /proc/self/mountinfo): a mount of a subtree counts only if the cgroup is inside
    it, so the file is never another cgroup's."""
    ours: list[tuple[set[str], str]] = []
    for line in proc_cgroup.splitlines():
        _, listed, cgroup_path = line.split(":", 2)
        ours.append((set(listed.split(",")) - {""}, cgroup_path))  # empty: the v2 hierarchy; else v1's controllers
    for line in mountinfo.splitlines():
        fields = line.split()
        dash = fields.index("-")
        fstype, options = fields[dash + 1], set(fields[dash + 3].split(","))
        root, mount_point = fields[3], fields[4]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        for controllers, path in ours:
            # v2 entry with the cgroup2 mount; a v1 entry with the mount whose options name all its controllers.
            if (fstype == "cgroup2") != (not controllers) or not controllers <= options:
                continue
            if root == "/":
                return os.path.join(mount_point, path.lstrip("/"), "cgroup.procs")
            if path == root or path.startswith(root + "/"):
                return os.path.join(mount_point, path[len(root) :].lstrip("/"), "cgroup.procs")
    return None


def _write(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
    except OSError:
        pass  # only ever a saving
    finally:
        os.close(fd)


def _read(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(fd)
