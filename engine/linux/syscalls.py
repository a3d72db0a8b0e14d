"""Namespaces, mounts and pidfds: the syscalls Python 3.11's os module lacks, wrapped with ctypes.

Each wrapper raises OSError with the call (and path) named, so a failing setup stage reports what it tried.
"""

from __future__ import annotations

import os

from engine.linux import ffi
from engine.linux.libc import check, libc

# The namespace flags, from the ctypes-free module `engine create`'s own process reads (re-exported: sc.CLONE_*).
from engine.linux.namespaces import CLONE_NEWCGROUP as CLONE_NEWCGROUP
from engine.linux.namespaces import CLONE_NEWIPC as CLONE_NEWIPC
from engine.linux.namespaces import CLONE_NEWNET as CLONE_NEWNET
from engine.linux.namespaces import CLONE_NEWNS as CLONE_NEWNS
from engine.linux.namespaces import CLONE_NEWPID as CLONE_NEWPID
from engine.linux.namespaces import CLONE_NEWTIME as CLONE_NEWTIME
from engine.linux.namespaces import CLONE_NEWUSER as CLONE_NEWUSER
from engine.linux.namespaces import CLONE_NEWUTS as CLONE_NEWUTS
from engine.linux.namespaces import NAMESPACES as NAMESPACES

# mount(2) flags (linux/mount.h).
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_POSIXACL = 1 << 16
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_KERNMOUNT = 1 << 22
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 0x2

# *at(2) flags and the fd that means "the current directory".
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000

# x86_64 syscall numbers for calls glibc 2.36 does not wrap.
SYS_PIVOT_ROOT = 155
SYS_PIDFD_SEND_SIGNAL = 424
SYS_PIDFD_OPEN = 434

# prctl(2) options.
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47

# ioctl(2) requests on a pty (asm-generic/ioctls.h: x86_64, arm64).
TIOCGPTN = 0x80045430  # _IOR('T', 0x30, unsigned int): the pty's number N, as in /dev/pts/N
TIOCSPTLCK = 0x40045431  # _IOW('T', 0x31, int): (un)lock the slave; unlockpt(3)
TIOCGPTPEER = 0x5441  # _IO('T', 0x41): open the slave from the master, no path lookup (Linux 4.13)

# statfs(2) f_type of the filesystems engine checks an fd against.
PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572
DEVPTS_SUPER_MAGIC = 0x1CD1

libc.mount.argtypes = [ffi.c_char_p, ffi.c_char_p, ffi.c_char_p, ffi.c_ulong, ffi.c_char_p]
libc.umount2.argtypes = [ffi.c_char_p, ffi.c_int]
libc.unshare.argtypes = [ffi.c_int]
libc.setns.argtypes = [ffi.c_int, ffi.c_int]
libc.syscall.restype = ffi.c_long
libc.prctl.argtypes = [ffi.c_int, ffi.c_ulong, ffi.c_ulong, ffi.c_ulong, ffi.c_ulong]


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    check(libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    check(libc.setns(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    check(libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {target}", target)


def umount2(target: str, flags: int = 0) -> None:
    check(libc.umount2(_b(target), flags), f"umount {target}", target)


def pivot_root(new_root: str, put_old: str) -> None:
    check(libc.syscall(SYS_PIVOT_ROOT, _b(new_root), _b(put_old)), "pivot_root", new_root)


def pidfd_open(pid: int) -> int:
    return check(libc.syscall(SYS_PIDFD_OPEN, ffi.c_int(pid), ffi.c_uint(0)), f"pidfd_open {pid}")


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    check(
        libc.syscall(SYS_PIDFD_SEND_SIGNAL, ffi.c_int(pidfd), ffi.c_int(sig), None, ffi.c_uint(0)),
        "pidfd_send_signal",
    )


def prctl(option: int, arg2: int = 0) -> None:
    check(libc.prctl(option, arg2, 0, 0, 0), f"prctl({option})")


def set_child_subreaper() -> None:
    """Orphaned descendants re-parent to us: `engine run` reaps its container's init this way."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def set_parent_death_signal(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


libc.fstatfs.argtypes = [ffi.c_int, ffi.c_void_p]


def fs_type(fd: int) -> int:
    """f_type of the filesystem fd lives on (fstatfs(2)); os.statvfs does not report it."""
    buf = ffi.create_string_buffer(256)  # struct statfs is 120 bytes on x86_64; f_type comes first
    check(libc.fstatfs(fd, buf), "fstatfs")
    return ffi.c_long.from_buffer(buf).value
