"""A container without a mount namespace of its own: linux.namespaces lists no "mount".

config-linux.md: "If a namespace type is not specified in the namespaces array, the container MUST inherit the
runtime namespace of that type." The container then shares the host's mount namespace, and:

- root.path is still the container's root, but by chroot(2): pivot_root would swap the root of the host's
  whole mount namespace, under every process of the host. runc and crun chroot too. `engine exec` puts its
  process in the same root (runc 1.1.5 does not: its exec'd process runs in the host's root).
- Nothing is mounted. A mount made in the host's namespace is there for every host process and stays after the
  container is gone: runc 1.1.5 and crun mount config.json's mounts (and the rootfs bind) there and never
  unmount them, and runc also makes the host's / rslave. So what needs a mount is refused, as runtime.md asks
  for a property the runtime cannot apply: mounts, maskedPaths, readonlyPaths, root.readonly,
  rootfsPropagation, devices (nodes or binds in the host's tree) and a terminal (/dev/console is a bind).
- The init reopens the exec fifo through /proc/self/fd (as runc's does), so the root must hold a procfs: root.path
  "/" (the host's), or a root with /proc mounted beforehand. After the chroot, /proc is checked to be procfs.
- A chroot does not contain a process that may chroot again (CAP_SYS_CHROOT) or that holds a directory fd from
  outside: sharing the host's mount namespace is sharing the host's files. That is what the config asks for.
"""

from __future__ import annotations

import os

from engine.errors import ConfigError, EngineError
from engine.linux import kernel
from engine.linux import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from engine.spec.typed import Spec

WHY = (
    "needs a mount namespace of its own (linux.namespaces has no mount: the container shares the host's, where"
    " engine mounts nothing)"
)


def shares_host_mounts(config: Spec) -> bool:
    return not any(ns["type"] == "mount" for ns in config.get("linux", {}).get("namespaces", []))


def refuse_what_needs_mounts(config: Spec) -> None:
    """One ConfigError naming the first property that would need a mount in the host's namespace."""
    linux = config.get("linux", {})
    wanted = [
        ("mounts", config.get("mounts")),
        ("root.readonly", config.get("root", {}).get("readonly")),
        ("linux.maskedPaths", linux.get("maskedPaths")),
        ("linux.readonlyPaths", linux.get("readonlyPaths")),
        ("linux.rootfsPropagation", linux.get("rootfsPropagation")),
        ("linux.devices", linux.get("devices")),
        ("process.terminal", config.get("process", {}).get("terminal")),
    ]
    for where, value in wanted:
        if value:
            raise ConfigError(f"config.json: {where}: {WHY}")


def enter_root(rootfs: str) -> None:
    """In the container's init: make rootfs its root, without touching the mount table."""
    os.chdir(rootfs)
    kernel.KERNEL.chroot(".")
    os.chdir("/")
    try:
        fd = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        fd = -1
    try:
        is_proc = fd >= 0 and kernel.KERNEL.fs_type(fd) == sc.PROC_SUPER_MAGIC
    finally:
        if fd >= 0:
            os.close(fd)
    if not is_proc:
        raise EngineError(
            f"root.path: {rootfs}/proc is not a mounted procfs: without a mount namespace engine mounts nothing, "
            "and the init needs /proc (use root.path / or mount proc there first)"
        )
