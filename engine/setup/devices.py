"""/dev inside the container: the default devices, linux.devices, and the /dev symlinks (config-linux.md
"Devices", "Default Devices").

Devices are made with mknod where we may; in a user namespace mknod is not allowed, so the host's device at
the same path is bind-mounted instead (as runc does). Every path is resolved inside the rootfs.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from engine.errors import EngineError, suppress
from engine.linux import kernel
from engine.linux.paths import O_PATH, create_file_in_root, mkdir_all_in_root, open_in_root

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from engine.spec.typed import Device

# What every container gets, in the shape of linux.devices entries.
DEFAULT_DEVICES: list[Device] = [
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666},
    {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o666},
    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7, "fileMode": 0o666},
    {"path": "/dev/random", "type": "c", "major": 1, "minor": 8, "fileMode": 0o666},
    {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9, "fileMode": 0o666},
    {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0, "fileMode": 0o666},
]
DEV_SYMLINKS = [
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
]
PTMX = "/dev/ptmx"
TYPE_BITS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


class DeviceError(EngineError):
    pass


def _matches(st: os.stat_result, device: Device) -> bool:
    kind = TYPE_BITS[device["type"]]
    if stat.S_IFMT(st.st_mode) != kind:
        return False
    return kind == stat.S_IFIFO or (
        os.major(st.st_rdev) == device.get("major") and os.minor(st.st_rdev) == device.get("minor")
    )


def make_device(root_fd: int, device: Device, where: str, *, use_bind: bool) -> None:
    path = device["path"]
    parent, _, name = path.rstrip("/").rpartition("/")
    if not name:
        raise DeviceError(f"{where}.path: {path!r} is not a file path")
    parent_fd = mkdir_all_in_root(root_fd, parent or "/")
    try:
        try:
            existing = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            # config-linux.md: "If a file already exists at path that does not match the requested device, the
            # runtime MUST generate an error."
            if stat.S_ISREG(existing.st_mode) and existing.st_size == 0 and use_bind:
                pass  # an empty placeholder, e.g. from an earlier bind: bind over it
            elif not _matches(existing, device):
                raise DeviceError(f"{where}: {path} exists and is not the requested device")
            else:
                _set_owner_and_mode(parent_fd, name, device)
                return
        mode = device.get("fileMode", 0o666)
        if not use_bind:
            try:
                dev = os.makedev(device.get("major", 0), device.get("minor", 0))
                kernel.KERNEL.mknod(name, TYPE_BITS[device["type"]] | mode, dev, parent_fd)
                # mknod honours the umask: without a fileMode the device must still be 0666, as runc's.
                _set_owner_and_mode(parent_fd, name, {"fileMode": mode, **device})
                return
            except PermissionError:
                pass  # not allowed here (a user namespace): fall back to a bind mount
        _bind_host_device(root_fd, path, where)
    except OSError as err:
        raise DeviceError(f"{where}: {path}: {err.strerror}") from None
    finally:
        os.close(parent_fd)


def _set_owner_and_mode(parent_fd: int, name: str, device: Device) -> None:
    if "fileMode" in device:
        os.chmod(name, device["fileMode"], dir_fd=parent_fd, follow_symlinks=False)  # mknod honours the umask
    if "uid" in device or "gid" in device:
        kernel.KERNEL.chown(name, device.get("uid", -1), device.get("gid", -1), parent_fd)


def _bind_host_device(root_fd: int, path: str, where: str) -> None:
    try:
        source = os.open(path, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)  # the host's /dev: we have not pivoted yet
    except OSError:
        raise DeviceError(f"{where}: cannot mknod {path} here and the host has no {path} to bind") from None
    try:
        target_fd = create_file_in_root(root_fd, path)
        try:
            kernel.KERNEL.bind_fd(source, target_fd)
        finally:
            os.close(target_fd)
    finally:
        os.close(source)


def in_user_namespace() -> bool:
    with open("/proc/self/uid_map") as f:
        return f.read().split() != ["0", "0", "4294967295"]


def is_ptmx(device: Device) -> bool:
    return "/" + posixpath.normpath(device["path"]).lstrip("/") == PTMX


def populate_dev(root_fd: int, devices: list[Device], has_dev_mount: bool) -> None:
    """The default devices (when /dev is the container's own, e.g. a tmpfs), then linux.devices.

    /dev/ptmx in linux.devices is skipped, as runc does: /dev/ptmx is always the symlink to the container's own
    devpts (pts/ptmx), which a terminal needs. A node made from the list would be the host's multiplexer (or, in
    a user namespace, a bind of the host's /dev/ptmx): ptys from the host's devpts instance."""
    use_bind = in_user_namespace()
    if has_dev_mount:
        for device in DEFAULT_DEVICES:
            make_device(root_fd, device, f"default device {device['path']}", use_bind=use_bind)
    for i, device in enumerate(devices):
        if not is_ptmx(device):
            make_device(root_fd, device, f"linux.devices[{i}]", use_bind=use_bind)
    if not has_dev_mount:
        return
    dev_fd = open_in_root(root_fd, "/dev", O_PATH | os.O_DIRECTORY)
    try:
        for target, name in DEV_SYMLINKS:
            with suppress(FileExistsError):
                os.symlink(target, name, dir_fd=dev_fd)
        try:
            has_pts = stat.S_ISDIR(os.stat("pts", dir_fd=dev_fd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            has_pts = False
        if has_pts:
            try:
                os.symlink("pts/ptmx", "ptmx", dir_fd=dev_fd)
            except OSError as err:
                if err.errno != errno.EEXIST:
                    raise
    finally:
        os.close(dev_fd)
