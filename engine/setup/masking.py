"""linux.maskedPaths and linux.readonlyPaths (config-linux.md), applied after pivot_root.

A masked directory gets an empty read-only tmpfs over it, a masked file /dev/null bound over it. A read-only
path is bound onto itself and remounted read-only. Paths are resolved inside the container's root without
following a symlink planted at the path itself (O_NOFOLLOW), so a container cannot redirect the mount.
"""

from __future__ import annotations

import errno
import os
import stat

from engine.errors import EngineError
from engine.linux import syscalls as sc
from engine.linux.paths import O_PATH, fd_path, open_in_root


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


def mask_paths(paths: list[str]) -> None:
    root_fd = os.open("/", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for path in paths:
            fd = _open_target(root_fd, path)
            if fd is None:
                continue
            try:
                mode = os.fstat(fd).st_mode
                if stat.S_ISLNK(mode):
                    continue  # a symlink cannot be a mount point; masking its target is not what was asked
                if stat.S_ISDIR(mode):
                    sc.mount("tmpfs", fd_path(fd), "tmpfs", sc.MS_RDONLY, "size=0k,mode=0755")
                else:
                    sc.mount("/dev/null", fd_path(fd), None, sc.MS_BIND)
            except OSError as err:
                raise EngineError(f"linux.maskedPaths: {path}: {err.strerror}") from None
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)


def locked_flags(fd: int) -> int:
    """nosuid/nodev/noexec of the mount at fd: a bind remount must repeat them (and may not clear them)."""
    st = os.statvfs(fd_path(fd))
    flags = 0
    for bit, flag in ((os.ST_NOSUID, sc.MS_NOSUID), (os.ST_NODEV, sc.MS_NODEV), (os.ST_NOEXEC, sc.MS_NOEXEC)):
        if st.f_flag & bit:
            flags |= flag
    return flags


def readonly_paths(paths: list[str]) -> None:
    root_fd = os.open("/", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for path in paths:
            fd = _open_target(root_fd, path)
            if fd is None:
                continue
            try:
                if stat.S_ISLNK(os.fstat(fd).st_mode):
                    continue
                target = fd_path(fd)
                sc.mount(target, target, None, sc.MS_BIND | sc.MS_REC)
                # Remount the new bind (re-resolved: the old fd names what lies beneath it).
                fd2 = open_in_root(root_fd, path, O_PATH | os.O_NOFOLLOW)
                try:
                    sc.mount(None, fd_path(fd2), None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | locked_flags(fd2))
                finally:
                    os.close(fd2)
            except OSError as err:
                raise EngineError(f"linux.readonlyPaths: {path}: {err.strerror}") from None
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)
