"""A mount of type "cgroup": what runc gives a container at /sys/fs/cgroup.

On a pure cgroup v2 host that is one cgroup2 mount. On a v1 or hybrid host (like this one) it is a tmpfs with
one mount per hierarchy the host has, each showing the container's own cgroup: mounted fresh inside a cgroup
namespace (where the namespace root is the container's cgroup), bind-mounted from the host's view otherwise.
"""

from __future__ import annotations

import errno
import os

from engine.linux import kernel
from engine.linux import syscalls as sc
from engine.record import record

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from collections.abc import Callable

HOST_CGROUP_ROOT = "/sys/fs/cgroup"


@record
class Hierarchy:
    name: str  # directory name under /sys/fs/cgroup, e.g. "memory", "unified"; "" for a pure v2 host
    fstype: str  # "cgroup" or "cgroup2"
    options: str  # the superblock options that select it, e.g. "memory" or "none,name=systemd"
    host_path: str  # our own cgroup within it, from /proc/self/cgroup


def host_hierarchies() -> list[Hierarchy]:
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            own[controllers] = path
    found = []
    known: set[str] | None = None  # /proc/cgroups, read once, at the first v1 hierarchy (~40 us each time)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            mount_point, fstype = fields[4], rfields[0]
            if fstype == "cgroup2" and mount_point == HOST_CGROUP_ROOT:
                return [Hierarchy("", "cgroup2", "", own.get("", "/"))]  # a pure cgroup v2 host
            if fstype not in ("cgroup", "cgroup2") or os.path.dirname(mount_point) != HOST_CGROUP_ROOT:
                continue
            super_opts = [o for o in rfields[2].split(",") if o not in ("rw", "ro")]
            if fstype == "cgroup2":
                key, options = "", ""
            else:
                if known is None:
                    known = _known_controllers()
                names = [o for o in super_opts if o.startswith("name=")]
                ctrls = [o for o in super_opts if "=" not in o and o in known]
                key = ",".join(ctrls + names)
                options = ",".join(ctrls) if ctrls else "none," + ",".join(names)
            found.append(Hierarchy(os.path.basename(mount_point), fstype, options, own.get(key, "/")))
    return found


def _known_controllers() -> set[str]:
    with open("/proc/cgroups") as f:
        return {line.split()[0] for line in f if not line.startswith("#")}


def mount_cgroups(
    target: str, reopen: Callable[[], int], flags: int, own_cgroup_ns: bool, hierarchies: list[Hierarchy]
) -> None:
    """Mount the container's cgroup view at target (a /proc/self/fd path inside the rootfs).

    reopen() resolves the destination again: the old fd still names the directory under the new tmpfs.
    """
    if len(hierarchies) == 1 and hierarchies[0].name == "":
        try:
            kernel.KERNEL.mount("cgroup2", target, "cgroup2", flags)
        except OSError as err:
            if err.errno != errno.EBUSY:
                raise
            # target is the root of the host's own cgroup2 mount (a /sys bound from the host, as rootless configs
            # have it), and the kernel refuses one superblock twice at one place: mount on a tmpfs in between.
            kernel.KERNEL.mount("tmpfs", target, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=755")
            fd = reopen()
            try:
                kernel.KERNEL.mount("cgroup2", f"/proc/self/fd/{fd}", "cgroup2", flags)
            finally:
                os.close(fd)
        return
    tmpfs_flags = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    kernel.KERNEL.mount("tmpfs", target, "tmpfs", tmpfs_flags, "mode=755")
    top_fd = reopen()
    top = f"/proc/self/fd/{top_fd}"
    try:
        for h in hierarchies:
            sub = os.path.join(top, h.name)
            os.mkdir(sub, 0o755)
            if own_cgroup_ns:
                kernel.KERNEL.mount("cgroup", sub, h.fstype, flags, h.options or None)
            else:
                source = os.path.join(HOST_CGROUP_ROOT, h.name, h.host_path.lstrip("/"))
                kernel.KERNEL.mount(source, sub, None, sc.MS_BIND | sc.MS_REC)
                kernel.KERNEL.mount(None, sub, None, sc.MS_BIND | sc.MS_REMOUNT | flags)
        if flags & sc.MS_RDONLY:
            kernel.KERNEL.mount(None, top, None, sc.MS_REMOUNT | tmpfs_flags | sc.MS_RDONLY, "mode=755")
    finally:
        os.close(top_fd)
