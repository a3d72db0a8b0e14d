"""The container's filesystem: propagation, the rootfs bind, config mounts in order, /dev, then pivot_root.

Runs inside the container init (new mount namespace), before pivot_root. Every mount destination is resolved
inside the rootfs (engine.linux.paths) and mounted through /proc/self/fd/N of the resolved O_PATH fd.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from engine.errors import EngineError
from engine.linux import syscalls as sc
from engine.linux.mount_attr import AT_EMPTY_PATH, AT_RECURSIVE, mount_setattr
from engine.linux.paths import O_PATH, create_file_in_root, fd_path, mkdir_all_in_root, open_in_root
from engine.rootless.hooks import mount_refusal_hint
from engine.setup.cgroupfs import Hierarchy, host_hierarchies, mount_cgroups
from engine.setup.devices import populate_dev
from engine.setup.masking import locked_flags
from engine.setup.mount_options import parse_mount_options

PROPAGATION = {
    "shared": sc.MS_SHARED,
    "slave": sc.MS_SLAVE,
    "private": sc.MS_PRIVATE,
    "unbindable": 1 << 17,
}


class MountError(EngineError):
    pass


# The propagation rootfsPropagation asks for, applied to the container's "/" once it is the root (pivot_into).
# set_root_propagation and pivot_into run in the same process, the container init.
_root_propagation = 0


def set_root_propagation(rootfs_propagation: str | None) -> None:
    """Stop our mounts leaking to the host: every mount becomes a slave (runc's default), or private.

    config-linux.md: rootfsPropagation is "the rootfs's mount propagation", so it is applied to the rootfs
    mount after pivot_root (pivot_into), not here to the host's "/": pivot_root refuses a shared new root,
    and an unbindable "/" would make the rootfs bind below fail. Before that, "/" is rslave so the host's
    mounts still reach a slave rootfs, or rprivate for private and unbindable, which receive nothing.
    """
    global _root_propagation
    name = (rootfs_propagation or "slave").removeprefix("r")
    if name not in PROPAGATION:
        raise MountError(f"linux.rootfsPropagation: unknown value {rootfs_propagation!r}")
    _root_propagation = PROPAGATION[name] if rootfs_propagation else 0
    before = sc.MS_SLAVE if name in ("slave", "shared") else sc.MS_PRIVATE
    sc.mount(None, "/", None, sc.MS_REC | before)


def bind_rootfs(rootfs: str) -> None:
    """pivot_root needs the new root to be a mount point: bind it onto itself."""
    sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)


def _is_bind(mount: dict[str, Any]) -> bool:
    options = mount.get("options") or []
    return mount.get("type") == "bind" or "bind" in options or "rbind" in options


def bind_source(mount: dict[str, Any], bundle: str) -> str:
    source = mount.get("source")
    if not source:
        raise MountError(f"mounts: {mount['destination']}: a bind mount needs a source")
    return source if os.path.isabs(source) else os.path.join(bundle, source)  # config.md: relative to the bundle


def open_bind_sources(mounts: list[dict[str, Any]], bundle: str) -> dict[int, int]:
    """Detached copies (open_tree) of every bind source, made by `engine create` as the host's root, keyed by
    the mount's index: in a user namespace the init runs as a root that may not reach the sources (runc does
    the same). The init attaches them with move_mount."""
    fds: dict[int, int] = {}
    try:
        for i, mount in enumerate(mounts):
            if _is_bind(mount):
                source = bind_source(mount, bundle)
                recursive = "rbind" in (mount.get("options") or [])
                try:
                    fds[i] = sc.open_tree(source, recursive)
                except OSError as err:
                    raise MountError(f"mounts[{i}]: {mount['destination']}: source {source}: {err.strerror}") from None
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def mount_one(
    root_fd: int,
    mount: dict[str, Any],
    bundle: str,
    own_cgroup_ns: bool,
    hierarchies: list[Hierarchy],
    source_fd: int | None = None,
) -> None:
    """One entry of config.json "mounts", at its destination resolved inside the rootfs."""
    destination = mount["destination"]
    fstype = mount.get("type")
    source = mount.get("source")
    plan = parse_mount_options(mount.get("options") or [])
    if plan.idmap:
        # Refused rather than silently mounted without the mapping the config asked for.
        raise MountError(f"mounts: {destination}: idmap/ridmap mounts are not supported yet")
    bind = _is_bind(mount)
    if bind:
        source = bind_source(mount, bundle) if source_fd is None else fd_path(source_fd)
        try:
            source_is_dir = stat.S_ISDIR(os.stat(source).st_mode)
        except OSError as err:
            raise MountError(f"mounts: {destination}: source {source}: {err.strerror}") from None
    try:
        if bind and not source_is_dir:
            target_fd = create_file_in_root(root_fd, destination)
        else:
            target_fd = mkdir_all_in_root(root_fd, destination)
    except OSError as err:
        raise MountError(f"mounts: {destination}: cannot make the mount point in the rootfs: {err.strerror}") from None
    try:
        target = fd_path(target_fd)
        try:
            if bind:
                if source_fd is not None:
                    sc.move_mount(source_fd, target_fd)  # a tree open_tree copied (in a user namespace)
                else:
                    sc.mount(source, target, None, sc.MS_BIND | (plan.flags & sc.MS_REC))
                # A bind mount ignores the other flags (ro, nosuid...) on the first call: apply them with a remount.
                remount_flags = plan.flags & ~(sc.MS_REC | sc.MS_BIND)
                if remount_flags:
                    _on_new_mount(root_fd, destination, lambda path: _remount_bind(path, remount_flags))
            elif fstype == "cgroup":
                mount_cgroups(
                    target,
                    lambda: open_in_root(root_fd, destination, O_PATH | os.O_DIRECTORY),
                    plan.flags,
                    own_cgroup_ns,
                    hierarchies,
                )
            else:
                sc.mount(source or fstype or "none", target, fstype, plan.flags, plan.data or None)
                if fstype in _EXPECTED_FS:
                    check_kernel_fs(root_fd, destination, fstype)
            if plan.rec_attr_set or plan.rec_attr_clr:
                # rro, rnosuid, ...: the whole mounted tree, submounts included (mount_setattr AT_RECURSIVE).
                fd = open_in_root(root_fd, destination, O_PATH)
                try:
                    mount_setattr(
                        fd, "", AT_EMPTY_PATH | AT_RECURSIVE, attr_set=plan.rec_attr_set, attr_clr=plan.rec_attr_clr
                    )
                finally:
                    os.close(fd)
            for propagation in plan.propagations:
                _on_new_mount(root_fd, destination, lambda path, p=propagation: sc.mount(None, path, None, p))
        except OSError as err:
            raise MountError(
                f"mounts: mounting {source or fstype} on {destination} (type {fstype}): {err.strerror}"
                + mount_refusal_hint(fstype, err.errno)
            ) from None
    finally:
        os.close(target_fd)


_EXPECTED_FS = {"proc": sc.PROC_SUPER_MAGIC, "sysfs": sc.SYSFS_MAGIC}


def check_kernel_fs(root_fd: int, destination: str, fstype: str) -> None:
    """After mounting proc or sysfs, make sure that what the destination now resolves to really is that
    filesystem: maskedPaths, readonlyPaths and sysctl writes trust /proc and /sys to be the kernel's."""
    fd = open_in_root(root_fd, destination, O_PATH | os.O_DIRECTORY)
    try:
        if sc.fs_type(fd) != _EXPECTED_FS[fstype]:
            raise MountError(f"mounts: {destination}: after mounting {fstype} it is not {fstype}")
    finally:
        os.close(fd)


def _remount_bind(path: str, flags: int) -> None:
    """Remount the bind at path with flags. In a user namespace the kernel refuses (EPERM) to clear the
    nosuid/nodev/noexec the source's mount has (locked flags): then keep them, as runc does."""
    try:
        sc.mount(None, path, None, sc.MS_BIND | sc.MS_REMOUNT | flags)
    except PermissionError:
        have = os.statvfs(path).f_flag
        bits = ((os.ST_NOSUID, sc.MS_NOSUID), (os.ST_NODEV, sc.MS_NODEV), (os.ST_NOEXEC, sc.MS_NOEXEC))
        locked = sum(flag for bit, flag in bits if have & bit)
        sc.mount(None, path, None, sc.MS_BIND | sc.MS_REMOUNT | flags | locked)


def _on_new_mount(root_fd: int, destination: str, action: Any) -> None:
    """Run action(path) on the mount just made at destination. The fd the mount was made through names the
    directory (or file) underneath it, and a remount or propagation change there fails with EINVAL (not a
    mount point): resolve the destination again, which now lands on the new mount's root."""
    fd = open_in_root(root_fd, destination, O_PATH)
    try:
        action(fd_path(fd))
    finally:
        os.close(fd)


def setup_mounts(
    rootfs: str,
    mounts: list[dict[str, Any]],
    bundle: str,
    own_cgroup_ns: bool,
    devices: list[dict[str, Any]],
    source_fds: dict[int, int] | None = None,
) -> None:
    root_fd = os.open(rootfs, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    hierarchies = host_hierarchies() if any(m.get("type") == "cgroup" for m in mounts) else []
    source_fds = source_fds or {}
    try:
        for i, mount in enumerate(mounts):
            mount_one(root_fd, mount, bundle, own_cgroup_ns, hierarchies, source_fds.get(i))
        # runc makes the default devices only when /dev is not bind-mounted from the host.
        has_dev_mount = any(m["destination"].rstrip("/") == "/dev" and not _is_bind(m) for m in mounts)
        populate_dev(root_fd, devices, has_dev_mount)
    finally:
        os.close(root_fd)


def pivot_into(rootfs: str, no_pivot: bool) -> None:
    """Make rootfs the container's /. pivot_root(".", ".") stacks the old root on top; detach it right away."""
    os.chdir(rootfs)
    if no_pivot:
        sc.mount(rootfs, "/", None, sc.MS_MOVE)
        os.chroot(".")
    else:
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.pivot_root(".", ".")
            # "." is still the new root here (the old one is stacked on top of it, but a path walk does not
            # step from its starting point onto a mount above): go to the old root itself, or the rslave below
            # would hit the container's own mounts and undo every shared mount and rootfsPropagation (as runc).
            os.fchdir(old_root)
        finally:
            os.close(old_root)
        # The old root must not propagate our unmount to the host.
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")
    if _root_propagation:
        try:
            sc.mount(None, "/", None, _root_propagation)
        except OSError as err:
            raise MountError(f"linux.rootfsPropagation: {err.strerror}") from None


def make_root_readonly() -> None:
    fd = os.open("/", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | locked_flags(fd))
    finally:
        os.close(fd)
