"""linux.maskedPaths and linux.readonlyPaths (config-linux.md), applied inside the rootfs before pivot_root.

A masked directory gets an empty read-only tmpfs over it; a masked file gets a null device bound over it that
engine opened itself and proved to be the null device (char 1:3), bound through that fd (open_tree +
move_mount): the container's /dev/null when it is one (engine made it, unless /dev comes from a config mount),
the host's otherwise. Binding whatever the container's /dev/null resolves to let an image alias a mask to, say,
/proc/sys/kernel/core_pattern (CVE-2025-31133). A read-only path is cloned and attached onto itself read-only.
Every path is resolved inside the rootfs without following a symlink planted at the path itself (O_NOFOLLOW), so
a container cannot redirect the mount.
"""

from __future__ import annotations

import errno
import os
import stat

from engine.errors import EngineError
from engine.linux import kernel
from engine.linux.mount_attr import MOUNT_ATTR_RDONLY
from engine.linux.paths import O_PATH, open_in_root

NULL_DEVICE = os.makedev(1, 3)


def _is_null_device(fd: int) -> bool:
    st = os.fstat(fd)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == NULL_DEVICE


def open_dev_null(root_fd: int) -> int:
    """An O_PATH fd on a null device to mask files with: the container's /dev/null if it really is one (no
    symlink followed, char 1:3), else the host's /dev/null, checked the same way. Call before pivot_root."""
    try:
        fd = open_in_root(root_fd, "/dev/null", O_PATH | os.O_NOFOLLOW)
    except OSError:
        fd = -1
    if fd >= 0:
        if _is_null_device(fd):
            return fd
        os.close(fd)
    try:
        fd = os.open("/dev/null", O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        raise EngineError(f"linux.maskedPaths: the host's /dev/null: {err.strerror}") from None
    if not _is_null_device(fd):
        os.close(fd)
        raise EngineError("linux.maskedPaths: the host's /dev/null is not the null device (char 1:3)")
    return fd


def _open_target(root_fd: int, path: str) -> int | None:
    """An O_PATH fd on path, or None if it does not exist (nothing to mask)."""
    try:
        return open_in_root(root_fd, path, O_PATH | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ENOTDIR:
            return None
        raise


def mask_paths(root_fd: int, paths: list[str], dev_null: int) -> None:
    for path in paths:
        fd = _open_target(root_fd, path)
        if fd is None:
            continue
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                continue  # a symlink cannot be a mount point; masking its target is not what was asked
            if stat.S_ISDIR(mode):
                empty = kernel.KERNEL.new_filesystem(
                    "tmpfs", "tmpfs", [("size", "0k"), ("mode", "755"), ("ro", None)], MOUNT_ATTR_RDONLY
                )
                try:
                    kernel.KERNEL.attach(empty, fd)
                finally:
                    os.close(empty)
            else:
                kernel.KERNEL.bind_fd(dev_null, fd)
        except OSError as err:
            raise EngineError(f"linux.maskedPaths: {path}: {err.strerror or err}") from None
        finally:
            os.close(fd)


def readonly_paths(root_fd: int, paths: list[str]) -> None:
    for path in paths:
        fd = _open_target(root_fd, path)
        if fd is None:
            continue
        try:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                continue
            # A recursive clone of what is there, read-only at its top (as runc's bind + remount), attached onto
            # the very fd it was cloned from: no second lookup, and nosuid/nodev/noexec stay as they were.
            kernel.KERNEL.bind_fd(fd, fd, recursive=True, attr_set=MOUNT_ATTR_RDONLY)
        except OSError as err:
            raise EngineError(f"linux.readonlyPaths: {path}: {err.strerror or err}") from None
        finally:
            os.close(fd)
