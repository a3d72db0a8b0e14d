"""The fd-based mount API (Linux 5.2, mount_setattr 5.12): mounts made, changed and attached through fds.

    fsopen(type) -> fsconfig(key, value)... -> fsconfig(CREATE) -> fsmount()   a new filesystem, not attached
    open_tree(fd, OPEN_TREE_CLONE)                                             a detached copy of a mount (bind)
    mount_setattr(mount fd)                                                    its flags, before anyone sees it
    move_mount(mount fd, target fd)                                            attach it onto what target fd is

Why: with mount(2) a bind mount's flags need a remount, which looks the destination up a second time; a
container that swaps a symlink in between (CVE-2021-30465) gets the remount applied somewhere else and the
bind left writable. Here every step acts on the fd of the mount itself, and the target is an O_PATH fd that
was resolved once, inside the rootfs. Once attached, the mount fd still names the mount (not the directory
under it), so propagation changes act on it too.
"""

from __future__ import annotations

import os

from engine.linux import ffi
from engine.linux.libc import check, libc
from engine.linux.mount_attr import (
    MOUNT_ATTR__ATIME,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_NOSYMFOLLOW,
    MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_STRICTATIME,
    mount_setattr,
)
from engine.linux.syscalls import (
    AT_EMPTY_PATH,
    AT_FDCWD,
    AT_RECURSIVE,
    MS_DIRSYNC,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_RDONLY,
    MS_RELATIME,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
)

# x86_64 (and every generic-table architecture): the new mount API's syscall numbers.
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_FSOPEN = 430
SYS_FSCONFIG = 431
SYS_FSMOUNT = 432

FSOPEN_CLOEXEC = 0x1
FSMOUNT_CLOEXEC = 0x1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6

OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x00000004
MOVE_MOUNT_T_EMPTY_PATH = 0x00000040

# mount(2) flags that are per-mount attributes in the new API (linux/mount.h MS_* -> MOUNT_ATTR_*).
_PER_MOUNT = (
    (MS_RDONLY, MOUNT_ATTR_RDONLY),
    (MS_NOSUID, MOUNT_ATTR_NOSUID),
    (MS_NODEV, MOUNT_ATTR_NODEV),
    (MS_NOEXEC, MOUNT_ATTR_NOEXEC),
    (MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
    (MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW),
)
# Superblock flags that fsconfig takes by name (fs/fs_context.c common_set_sb_flag); "ro" is both.
SB_FLAG_NAMES = {
    MS_RDONLY: "ro",
    MS_SYNCHRONOUS: "sync",
    MS_MANDLOCK: "mand",
    MS_DIRSYNC: "dirsync",
    MS_LAZYTIME: "lazytime",
}
SB_FLAGS_OK = sum(SB_FLAG_NAMES)
LOCKABLE = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC  # what a user namespace may not clear
PER_MOUNT_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOSYMFOLLOW | MS_NOATIME | MS_NODIRATIME
ATIME_FLAGS = MS_NOATIME | MS_RELATIME | MS_STRICTATIME


def _syscall(number: int, *args: object) -> int:
    libc.syscall.restype = ffi.c_long
    return int(libc.syscall(ffi.c_long(number), *args))


def attrs_from_flags(flags: int) -> tuple[int, int]:
    """mount(2) MS_* flags -> (MOUNT_ATTR_* to set, MOUNT_ATTR_* to clear) for mount_setattr.

    Only what the flags ask for is set; the atime mode is changed only when one of noatime, relatime or
    strictatime is given (the field is an enum: setting it needs the whole MOUNT_ATTR__ATIME cleared)."""
    attr_set = 0
    for flag, attr in _PER_MOUNT:
        if flags & flag:
            attr_set |= attr
    attr_clr = 0
    if flags & ATIME_FLAGS:
        attr_clr |= MOUNT_ATTR__ATIME
        if flags & MS_NOATIME:
            attr_set |= MOUNT_ATTR_NOATIME
        elif flags & MS_STRICTATIME:
            attr_set |= MOUNT_ATTR_STRICTATIME
    return attr_set, attr_clr


def attrs_cleared_by(cleared_flags: int) -> int:
    """MS_* flags an option turned off explicitly ("rw", "suid", "dev", ...) -> MOUNT_ATTR_* to clear."""
    attr_clr = 0
    for flag, attr in _PER_MOUNT:
        if cleared_flags & flag:
            attr_clr |= attr
    return attr_clr


def fsopen(fstype: str) -> int:
    return check(_syscall(SYS_FSOPEN, os.fsencode(fstype), ffi.c_uint(FSOPEN_CLOEXEC)), f"fsopen {fstype}")


def _fs_error(fs_fd: int) -> str:
    """The kernel's own message for a failed fsconfig ("e tmpfs: Bad value for 'size'"), if it left one."""
    try:
        os.set_blocking(fs_fd, False)
        text = os.read(fs_fd, 1024).decode(errors="replace").strip()
    except OSError:
        return ""
    return text[2:] if text[:2] in ("e ", "w ", "i ") else text


def fsconfig(fs_fd: int, key: str, value: str | None = None) -> None:
    """One option: key=value (a string) or a bare flag (value None)."""
    if value is None:
        result = _syscall(SYS_FSCONFIG, ffi.c_int(fs_fd), ffi.c_uint(FSCONFIG_SET_FLAG), os.fsencode(key), None, 0)
    else:
        result = _syscall(
            SYS_FSCONFIG,
            ffi.c_int(fs_fd),
            ffi.c_uint(FSCONFIG_SET_STRING),
            os.fsencode(key),
            os.fsencode(value),
            0,
        )
    if result == -1:
        err = ffi.get_errno()
        detail = _fs_error(fs_fd) or os.strerror(err)
        raise OSError(err, f"option {key}{'' if value is None else '=' + value}: {detail}")


def fsmount(fs_fd: int, attr_flags: int = 0) -> int:
    """Create the superblock configured on fs_fd and return a detached mount of it (close-on-exec)."""
    if _syscall(SYS_FSCONFIG, ffi.c_int(fs_fd), ffi.c_uint(FSCONFIG_CMD_CREATE), None, None, 0) == -1:
        err = ffi.get_errno()
        raise OSError(err, _fs_error(fs_fd) or os.strerror(err))
    return check(
        _syscall(SYS_FSMOUNT, ffi.c_int(fs_fd), ffi.c_uint(FSMOUNT_CLOEXEC), ffi.c_uint(attr_flags)),
        "fsmount",
    )


def new_filesystem(fstype: str, source: str | None, options: list[tuple[str, str | None]], attr_flags: int = 0) -> int:
    """A detached mount of a new filesystem: fsopen, each option, create, fsmount. Raises OSError."""
    fs_fd = fsopen(fstype)
    try:
        if source:
            fsconfig(fs_fd, "source", source)
        for key, value in options:
            fsconfig(fs_fd, key, value)
        return fsmount(fs_fd, attr_flags)
    finally:
        os.close(fs_fd)


def clone_tree(fd: int, recursive: bool) -> int:
    """A detached copy (a bind mount not yet attached) of the mount tree at fd (any fd, O_PATH included)."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    return check(_syscall(SYS_OPEN_TREE, ffi.c_int(fd), b"", ffi.c_uint(flags)), "open_tree")


def clone_path(path: str, recursive: bool) -> int:
    """A detached copy of the mount tree at a host path (bind sources: config.json names them on the host)."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    return check(
        _syscall(SYS_OPEN_TREE, ffi.c_int(AT_FDCWD), os.fsencode(path), ffi.c_uint(flags)),
        f"open_tree {path}",
        path,
    )


def set_attrs(
    mount_fd: int, attr_set: int = 0, attr_clr: int = 0, *, recursive: bool = False, propagation: int = 0
) -> None:
    """mount_setattr on the mount mount_fd names (AT_EMPTY_PATH): no path is looked up."""
    if attr_set or attr_clr or propagation:
        flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
        mount_setattr(mount_fd, "", flags, attr_set=attr_set, attr_clr=attr_clr, propagation=propagation)


def attach(mount_fd: int, target_fd: int) -> None:
    """move_mount the detached mount onto the file or directory target_fd refers to."""
    flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
    check(
        _syscall(SYS_MOVE_MOUNT, ffi.c_int(mount_fd), b"", ffi.c_int(target_fd), b"", ffi.c_uint(flags)),
        "move_mount",
    )


def bind_fd(source_fd: int, target_fd: int, *, recursive: bool = False, attr_set: int = 0, attr_clr: int = 0) -> None:
    """Bind what source_fd is onto what target_fd is (with its submounts if recursive), the top mount's
    attributes set before it is attached (as a bind remount would)."""
    tree = clone_tree(source_fd, recursive)
    try:
        set_attrs(tree, attr_set, attr_clr)
        attach(tree, target_fd)
    finally:
        os.close(tree)
