"""The namespace types: clone(2)/unshare(2) flags and the spec's names for them.

Plain numbers, no ctypes: `engine create` plans the namespaces before it forks, and its own process never makes a
syscall that needs ctypes (engine/linux/syscalls.py, imported by the forked children, re-exports these).
"""

from __future__ import annotations

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# The spec's namespace type names -> clone flag and the /proc/<pid>/ns file that names that namespace.
NAMESPACES: dict[str, tuple[int, str]] = {
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
    "mount": (CLONE_NEWNS, "mnt"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "user": (CLONE_NEWUSER, "user"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}
