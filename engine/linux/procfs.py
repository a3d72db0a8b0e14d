"""A procfs that engine opened itself, and writes into /proc that cannot be redirected (CVE-2019-16884,
CVE-2025-52881).

A container's /proc is the container's: an image can make /proc a symlink, a config can bind a file over
/proc/sys/..., a shared volume can race a mount onto it. A write through such a path lands in a plain file
and the protection it was meant to set (a sysctl, oom_score_adj, an LSM exec label) silently does not happen.
So every write engine makes into /proc goes through ProcFS:

- the handle is the root of a procfs engine made itself: fsopen("proc") + fsmount, a mount attached
  nowhere (no one else can mount over it); where that is refused (a user namespace without its own pid
  namespace), a detached copy (open_tree OPEN_TREE_CLONE) of the /proc the caller sees, checked to be the
  root of a procfs; where that is refused too, /proc itself, checked the same way;
- a file is opened with openat2 RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS |
  RESOLVE_NO_MAGICLINKS from that root: no symlink, no mount crossed, nothing outside it;
- the opened fd is checked with fstatfs to be on procfs before anything is written.

"self" is a symlink, so it is read (readlinkat) and the pid it names is looked up as a plain directory.
"""

from __future__ import annotations

import errno
import os

from engine.linux import mountfd
from engine.linux.paths import (
    O_PATH,
    RESOLVE_BENEATH,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
    openat2,
)
from engine.linux.syscalls import PROC_SUPER_MAGIC, fs_type

STRICT = RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
PROC_ROOT_INO = 1  # include/linux/proc_ns.h: only the root of a procfs has inode 1


class ProcError(OSError):
    """A /proc file could not be proven to be procfs's own."""


def _check_root(fd: int, where: str) -> int:
    try:
        if fs_type(fd) != PROC_SUPER_MAGIC or os.fstat(fd).st_ino != PROC_ROOT_INO:
            raise ProcError(errno.EXDEV, f"{where} is not the root of a procfs")
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_proc_root(visible: str = "/proc") -> int:
    """An O_PATH-like fd on the root of a procfs nobody else can tamper with (see the module's docstring)."""
    try:
        return mountfd.new_filesystem(
            "proc", "proc", [], mountfd.MOUNT_ATTR_NOSUID | mountfd.MOUNT_ATTR_NODEV | mountfd.MOUNT_ATTR_NOEXEC
        )
    except OSError:
        pass
    try:
        return _check_root(mountfd.clone_path(visible, recursive=False), f"{visible} (a copy)")
    except ProcError:
        raise
    except OSError:
        pass
    return _check_root(os.open(visible, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), visible)


class ProcFS:
    """The root fd of a trusted procfs and the few operations engine needs on it."""

    def __init__(self, root_fd: int) -> None:
        self.fd = root_fd

    @classmethod
    def open(cls, visible: str = "/proc") -> ProcFS:
        return cls(open_proc_root(visible))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> ProcFS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def self_dir(self) -> str:
        """Our own /proc/<pid> in this procfs's pid namespace, as a path relative to its root."""
        return os.readlink("self", dir_fd=self.fd)

    def fd_target(self, fd: int) -> str:
        """The path our fd names (readlink of /proc/self/fd/N, in this procfs)."""
        return os.readlink(f"{self.self_dir()}/fd/{fd}", dir_fd=self.fd)

    def reopen(self, fd: int, flags: int) -> int:
        """Open what an O_PATH fd names, with real access flags, through this procfs's /proc/self/fd/N (the
        magic link of our own fd: the one lookup that may follow one)."""
        return os.open(f"{self.self_dir()}/fd/{fd}", flags | os.O_CLOEXEC, dir_fd=self.fd)

    def open_file(self, path: str, flags: int) -> int:
        """Open path (relative to the procfs root) and prove the result is a procfs file."""
        fd = openat2(self.fd, path, flags | os.O_NOFOLLOW, 0, STRICT)
        try:
            if fs_type(fd) != PROC_SUPER_MAGIC:
                raise ProcError(errno.EXDEV, f"/proc/{path} is not on procfs", path)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def write(self, path: str, data: bytes) -> None:
        """Write data to /proc/<path> in one write(2), as procfs files expect. Raises OSError."""
        fd = self.open_file(path, os.O_WRONLY)
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.EIO, f"/proc/{path}: short write ({written} of {len(data)} bytes)")
        finally:
            os.close(fd)

    def read(self, path: str) -> bytes:
        fd = self.open_file(path, os.O_RDONLY)
        try:
            return os.read(fd, 65536)
        finally:
            os.close(fd)

    def write_self(self, name: str, data: bytes) -> None:
        """/proc/self/<name>: self is a symlink, so resolve it here and open the pid's directory plainly."""
        self.write(f"{self.self_dir()}/{name}", data)

    def write_thread_self(self, name: str, data: bytes) -> None:
        """/proc/thread-self/<name>: per-thread attributes (attr/exec): "<pid>/task/<tid>/<name>"."""
        self.write(f"{os.readlink('thread-self', dir_fd=self.fd)}/{name}", data)
