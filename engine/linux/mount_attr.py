"""mount_setattr(2) (Linux 5.12): change mount attributes of a whole mount tree at once.

config.md's recursive options (rro, rnosuid, rnoatime, ...) and idmap/ridmap have no mount(2) flag: a
remount changes one mount, never its submounts. mount_setattr with AT_RECURSIVE does the whole tree, and
MOUNT_ATTR_IDMAP is the only way to idmap a mount. glibc 2.36 does not wrap it, hence the raw syscall.
"""

from __future__ import annotations

import os

from engine.linux import ffi
from engine.linux.libc import check, libc

# struct mount_attr attr_set / attr_clr bits (linux/mount.h).
MOUNT_ATTR_RDONLY = 0x00000001
MOUNT_ATTR_NOSUID = 0x00000002
MOUNT_ATTR_NODEV = 0x00000004
MOUNT_ATTR_NOEXEC = 0x00000008
MOUNT_ATTR__ATIME = 0x00000070  # the atime field: an enum of the three values below, not bits
MOUNT_ATTR_RELATIME = 0x00000000
MOUNT_ATTR_NOATIME = 0x00000010
MOUNT_ATTR_STRICTATIME = 0x00000020
MOUNT_ATTR_NODIRATIME = 0x00000080
MOUNT_ATTR_IDMAP = 0x00100000
MOUNT_ATTR_NOSYMFOLLOW = 0x00200000

# mount_setattr is 442 on every architecture that uses the generic syscall table, x86_64 included.
SYS_MOUNT_SETATTR = 442


class MountAttr(ffi.Structure):
    """struct mount_attr (MOUNT_ATTR_SIZE_VER0, 32 bytes)."""

    _fields_ = [
        ("attr_set", ffi.c_uint64),
        ("attr_clr", ffi.c_uint64),
        ("propagation", ffi.c_uint64),  # MS_SHARED / MS_SLAVE / MS_PRIVATE / MS_UNBINDABLE, or 0
        ("userns_fd", ffi.c_uint64),  # with MOUNT_ATTR_IDMAP: an fd of the user namespace to map through
    ]


def mount_setattr(
    dirfd: int,
    path: str,
    flags: int = 0,
    *,
    attr_set: int = 0,
    attr_clr: int = 0,
    propagation: int = 0,
    userns_fd: int = 0,
) -> None:
    """mount_setattr(dirfd, path, flags, &attr): flags AT_RECURSIVE for the whole tree, AT_EMPTY_PATH
    to act on dirfd itself (e.g. an O_PATH fd or an open_tree() fd). Raises OSError naming the path.

    Changing the atime mode needs MOUNT_ATTR__ATIME in attr_clr (the kernel refuses an atime value in
    attr_set otherwise); mount_options.MountPlan already arranges that.
    """
    attr = MountAttr(attr_set, attr_clr, propagation, userns_fd)
    libc.syscall.restype = ffi.c_long
    result = libc.syscall(
        ffi.c_long(SYS_MOUNT_SETATTR),
        ffi.c_int(dirfd),
        os.fsencode(path),
        ffi.c_uint(flags),
        ffi.byref(attr),
        ffi.c_size_t(ffi.sizeof(attr)),
    )
    check(int(result), "mount_setattr", path or f"fd {dirfd}")
