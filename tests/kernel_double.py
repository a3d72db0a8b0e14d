"""A recording double of engine/linux/kernel.py's Kernel, for unit tests that run without root.

Every privileged call is recorded, in order, as a tuple (name, arguments...) and not made. Fds are recorded by
what they stand for: a file or directory as its path inside `root` ("/dev/null"), anything outside it by its
host path (a bind source), a new filesystem the double "mounted" as "<new tmpfs>" (a memfd of that name, so that
the label goes away with the fd). What needs no privilege stays real and runs on `root`, a
temporary directory that stands for the container's rootfs: path resolution inside it (openat2), stat, mkdir,
symlinks, chmod. A mknod leaves an empty file with the node's permissions, so what follows (chmod, a second look)
finds something there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.linux import syscalls as sc
from engine.linux.kernel import Kernel

MAGIC = {"proc": sc.PROC_SUPER_MAGIC, "sysfs": sc.SYSFS_MAGIC}


class RecordingKernel(Kernel):
    def __init__(self, root: Path, fail: Mapping[str, OSError] | None = None) -> None:
        self.root = str(root)
        self.calls: list[tuple[Any, ...]] = []
        self.fail = dict(fail or {})  # method name -> the error it raises (after recording the call)

    # --- helpers ---------------------------------------------------------------------------------------------

    def _record(self, *call: Any) -> None:
        self.calls.append(call)
        if call[0] in self.fail:
            raise self.fail[call[0]]

    def where(self, fd_or_path: int | str) -> str:
        """A path inside root as the container would see it; anything else as it is."""
        if isinstance(fd_or_path, int):
            fd_or_path = os.readlink(f"/proc/self/fd/{fd_or_path}")
            if fd_or_path.startswith("/memfd:<new "):
                return fd_or_path.removeprefix("/memfd:").removesuffix(" (deleted)")
        if fd_or_path.startswith("/proc/self/fd/"):  # a magic link, maybe with a path below it
            fd, _, below = fd_or_path.removeprefix("/proc/self/fd/").partition("/")
            fd_or_path = os.readlink(f"/proc/self/fd/{fd}") + (f"/{below}" if below else "")
        if fd_or_path == self.root:
            return "/"
        if fd_or_path.startswith(self.root + "/"):
            return fd_or_path[len(self.root) :]
        return fd_or_path

    def names(self, name: str) -> list[tuple[Any, ...]]:
        """The calls of one method, in order."""
        return [call for call in self.calls if call[0] == name]

    # --- mounts ----------------------------------------------------------------------------------------------

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
    ) -> None:
        self._record("mount", source, self.where(target), fstype, flags, data)

    def umount(self, target: str, flags: int = 0) -> None:
        self._record("umount", target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._record("pivot_root", new_root, put_old)

    def chroot(self, path: str) -> None:
        self._record("chroot", path)

    def new_filesystem(
        self, fstype: str, source: str | None, options: list[tuple[str, str | None]], attr_flags: int = 0
    ) -> int:
        self._record("new_filesystem", fstype, source, options, attr_flags)
        return os.memfd_create(f"<new {fstype}>", os.MFD_CLOEXEC)  # a real fd the caller may close

    def clone_path(self, path: str, recursive: bool) -> int:
        self._record("clone_path", path, recursive)
        return os.open(path, os.O_PATH | os.O_CLOEXEC)  # real: the caller stats it (file or directory?)

    def set_attrs(
        self, fd: int, attr_set: int = 0, attr_clr: int = 0, *, propagation: int = 0, recursive: bool = False
    ) -> None:
        self._record("set_attrs", self.where(fd), attr_set, attr_clr, propagation, recursive)

    def attach(self, mount_fd: int, target_fd: int) -> None:
        self._record("attach", self.where(mount_fd), self.where(target_fd))

    def bind_fd(
        self, source_fd: int, target_fd: int, *, recursive: bool = False, attr_set: int = 0, attr_clr: int = 0
    ) -> None:
        self._record("bind_fd", self.where(source_fd), self.where(target_fd), recursive, attr_set, attr_clr)

    def fs_type(self, fd: int) -> int:
        label = self.where(fd)
        if label.startswith("<new "):
            return MAGIC.get(label.removeprefix("<new ").removesuffix(">"), 0)
        return sc.fs_type(fd)

    # --- files that take privilege -----------------------------------------------------------------------------

    def mknod(self, name: str, mode: int, device: int, dir_fd: int) -> None:
        self._record("mknod", f"{self.where(dir_fd).rstrip('/')}/{name}", mode, os.major(device), os.minor(device))
        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, mode & 0o7777, dir_fd=dir_fd))

    def chown(self, name: str, uid: int, gid: int, dir_fd: int) -> None:
        self._record("chown", f"{self.where(dir_fd).rstrip('/')}/{name}", uid, gid)

    def chown_fd(self, fd: int, uid: int, gid: int) -> None:
        self._record("chown_fd", self.where(fd), uid, gid)

    # --- namespaces and credentials ------------------------------------------------------------------------------

    def unshare(self, flags: int) -> None:
        self._record("unshare", flags)

    def setns(self, fd: int, nstype: int) -> None:
        self._record("setns", fd, nstype)

    def set_ids(self, uid: int, gid: int) -> None:
        self._record("set_ids", uid, gid)

    def set_dumpable(self, dumpable: bool) -> None:
        self._record("set_dumpable", dumpable)

    def set_parent_death_signal(self, sig: int) -> None:
        self._record("set_parent_death_signal", sig)

    def set_hostname(self, name: str) -> None:
        self._record("set_hostname", name)

    def set_domainname(self, name: str) -> None:
        self._record("set_domainname", name)

    # --- the process's attributes ----------------------------------------------------------------------------------

    def apply_rlimits(self, rlimits: Sequence[Mapping[str, Any]]) -> None:
        self._record("apply_rlimits", list(rlimits))

    def apply_personality(self, personality: Mapping[str, Any], warn: Callable[[str], None]) -> None:
        self._record("apply_personality", dict(personality))

    def apply_scheduler(self, scheduler: Mapping[str, Any]) -> None:
        self._record("apply_scheduler", dict(scheduler))

    def apply_io_priority(self, io_priority: Mapping[str, Any]) -> None:
        self._record("apply_io_priority", dict(io_priority))

    def apply_cpu_affinity(self, affinity: Mapping[str, Any], initial: bool) -> None:
        self._record("apply_cpu_affinity", dict(affinity), initial)

    def apply_user_and_capabilities(
        self,
        user: Mapping[str, Any],
        caps: Mapping[str, Any] | None,
        warn: Callable[[str], None],
        exec_gid: int | None = None,
    ) -> None:
        if exec_gid is None:
            self._record("apply_user_and_capabilities", dict(user), caps)
        else:
            self._record("apply_user_and_capabilities", dict(user), caps, exec_gid)

    def set_no_new_privileges(self) -> None:
        self._record("set_no_new_privileges")

    def load_seccomp(self, plan: Any) -> int | None:
        self._record("load_seccomp", plan)
        return None
