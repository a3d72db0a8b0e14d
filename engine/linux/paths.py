"""Resolve container paths inside the rootfs, never following a symlink out of it (openat2 RESOLVE_IN_ROOT).

A rootfs is untrusted: /etc -> /host/etc style symlinks planted in it must resolve as if the rootfs were /.
We open the target with openat2(RESOLVE_IN_ROOT) and then act on the returned O_PATH fd through
/proc/self/fd/N, so nothing can swap a component between the check and the use.
"""

from __future__ import annotations

import errno
import os

from engine.linux import ffi
from engine.linux.libc import check, libc

SYS_OPENAT2 = 437
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
O_PATH = 0o10000000


class _OpenHow(ffi.Structure):
    _fields_ = [("flags", ffi.c_uint64), ("mode", ffi.c_uint64), ("resolve", ffi.c_uint64)]


# RESOLVE_IN_ROOT/RESOLVE_BENEATH fail with EAGAIN when a rename or a mount anywhere on the host raced a ".."
# step of the walk (the kernel cannot prove the walk stayed inside); retrying is what the kernel asks for.
# Bounded, so a host that mounts without pause cannot hang a create.
_EAGAIN_RETRIES = 128


def openat2(dir_fd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    encoded = os.fsencode(path)
    for _ in range(_EAGAIN_RETRIES):
        ret = libc.syscall(SYS_OPENAT2, ffi.c_int(dir_fd), encoded, ffi.byref(how), ffi.c_size_t(ffi.sizeof(how)))
        if ret >= 0 or ffi.get_errno() != errno.EAGAIN:
            break
    return check(ret, f"open {path} in rootfs", path)


def open_in_root(root_fd: int, path: str, flags: int = O_PATH, mode: int = 0, *, no_symlinks: bool = False) -> int:
    """Open `path` (absolute or relative) as seen from inside the rootfs held open by root_fd.

    Magic links (/proc/self/fd/N, /proc/<pid>/cwd, ...) are refused (ELOOP): they would lead out of the
    root. no_symlinks refuses every symlink on the way too."""
    resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | (RESOLVE_NO_SYMLINKS if no_symlinks else 0)
    return openat2(root_fd, path.lstrip("/") or ".", flags, mode, resolve)


def same_file(a: int, b: int) -> bool:
    sa, sb = os.fstat(a), os.fstat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def fd_path(fd: int) -> str:
    """A path that names exactly the object behind fd (used as a mount target)."""
    return f"/proc/self/fd/{fd}"


def mkdir_all_in_root(root_fd: int, path: str, mode: int = 0o755) -> int:
    """Create every missing directory of `path` inside the rootfs; returns an O_PATH fd on the last one.

    Each prefix is resolved from the rootfs root (so an absolute symlink inside the rootfs points inside it);
    a missing component is created with mkdirat in its resolved parent, which never follows a symlink.
    """
    parts = [p for p in path.split("/") if p and p != "."]
    parent = open_in_root(root_fd, "/", O_PATH | os.O_DIRECTORY)
    try:
        for i, part in enumerate(parts):
            prefix = "/".join(parts[: i + 1])
            try:
                nxt = open_in_root(root_fd, prefix, O_PATH | os.O_DIRECTORY)
            except FileNotFoundError:
                try:
                    os.mkdir(part, mode, dir_fd=parent)
                except FileExistsError:
                    # It exists but did not resolve: a dangling symlink. Refuse rather than guess.
                    raise OSError(errno.ENOENT, f"{prefix}: a dangling symlink in the rootfs", path) from None
                nxt = open_in_root(root_fd, prefix, O_PATH | os.O_DIRECTORY)
            os.close(parent)
            parent = nxt
        return parent
    except BaseException:
        os.close(parent)
        raise


def create_file_in_root(root_fd: int, path: str, mode: int = 0o644) -> int:
    """Make sure a regular file exists at `path` (a bind-mount target for a file); returns an O_PATH fd."""
    parent, _, name = path.rstrip("/").rpartition("/")
    parent_fd = mkdir_all_in_root(root_fd, parent)
    try:
        try:
            return open_in_root(root_fd, path, O_PATH)
        except FileNotFoundError:
            # O_NOFOLLOW|O_EXCL: a planted symlink at the name fails here instead of creating a file elsewhere.
            fd = os.open(
                name,
                os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW,
                mode,
                dir_fd=parent_fd,
            )
            os.close(fd)
            return open_in_root(root_fd, path, O_PATH)
    finally:
        os.close(parent_fd)
