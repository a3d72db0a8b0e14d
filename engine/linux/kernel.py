"""The seam between engine's setup code and the kernel: every call that needs privilege or changes the process for
good (mounts, device nodes, ownership, namespaces, credentials, capabilities, rlimits, seccomp), as one object.

engine/setup/*, engine/process_setup.py, engine/init.py and engine/exec.py make these calls through `KERNEL`, never
through engine/linux's functions directly, so that a unit test can put a recording double in its place (use())
and check the order and the arguments of a stage without root (tests/kernel_double.py). What needs no privilege
(opening, resolving and stat'ing paths inside the rootfs, making directories and symlinks) stays real: the double
runs it on a temporary directory. The integration tests prove that the real calls do what the double records.

Each method is a thin wrapper: the behaviour (errors, flags, fallbacks) lives in the module it delegates to.
"""

from __future__ import annotations

import os

from engine.linux import capabilities, mountfd, process_attrs
from engine.linux import syscalls as sc

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from engine.linux.seccomp import FilterPlan
    from engine.spec.typed import Capabilities, ExecCPUAffinity, IOPriority, Personality, Rlimit, Scheduler, User


class Kernel:
    """The real kernel."""

    # --- mounts ---------------------------------------------------------------------------------------------

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
    ) -> None:
        sc.mount(source, target, fstype, flags, data)

    def umount(self, target: str, flags: int = 0) -> None:
        sc.umount2(target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        sc.pivot_root(new_root, put_old)

    def chroot(self, path: str) -> None:
        os.chroot(path)

    def new_filesystem(
        self, fstype: str, source: str | None, options: list[tuple[str, str | None]], attr_flags: int = 0
    ) -> int:
        """A detached mount of a new filesystem (fsopen, fsconfig, fsmount): its fd."""
        return mountfd.new_filesystem(fstype, source, options, attr_flags)

    def clone_path(self, path: str, recursive: bool) -> int:
        """A detached copy of the mount at path (open_tree OPEN_TREE_CLONE): its fd."""
        return mountfd.clone_path(path, recursive)

    def set_attrs(
        self, fd: int, attr_set: int = 0, attr_clr: int = 0, *, propagation: int = 0, recursive: bool = False
    ) -> None:
        mountfd.set_attrs(fd, attr_set, attr_clr, propagation=propagation, recursive=recursive)

    def attach(self, mount_fd: int, target_fd: int) -> None:
        """move_mount a detached mount onto the file or directory target_fd refers to."""
        mountfd.attach(mount_fd, target_fd)

    def bind_fd(
        self, source_fd: int, target_fd: int, *, recursive: bool = False, attr_set: int = 0, attr_clr: int = 0
    ) -> None:
        mountfd.bind_fd(source_fd, target_fd, recursive=recursive, attr_set=attr_set, attr_clr=attr_clr)

    def fs_type(self, fd: int) -> int:
        """The filesystem's magic number (fstatfs): what was really mounted there."""
        return sc.fs_type(fd)

    # --- files that take privilege -----------------------------------------------------------------------------

    def mknod(self, name: str, mode: int, device: int, dir_fd: int) -> None:
        os.mknod(name, mode, device, dir_fd=dir_fd)

    def chown(self, name: str, uid: int, gid: int, dir_fd: int) -> None:
        os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)

    def chown_fd(self, fd: int, uid: int, gid: int) -> None:
        os.fchown(fd, uid, gid)

    # --- namespaces and credentials ------------------------------------------------------------------------------

    def unshare(self, flags: int) -> None:
        sc.unshare(flags)

    def setns(self, fd: int, nstype: int) -> None:
        sc.setns(fd, nstype)

    def set_ids(self, uid: int, gid: int) -> None:
        """setresgid, then setresuid: every id of this process."""
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)

    def set_dumpable(self, dumpable: bool) -> None:
        sc.prctl(sc.PR_SET_DUMPABLE, int(dumpable))

    def set_parent_death_signal(self, sig: int) -> None:
        sc.set_parent_death_signal(sig)

    def set_hostname(self, name: str) -> None:
        process_attrs.set_hostname(name)

    def set_domainname(self, name: str) -> None:
        process_attrs.set_domainname(name)

    # --- the process's attributes ----------------------------------------------------------------------------------

    def apply_rlimits(self, rlimits: Sequence[Rlimit]) -> None:
        process_attrs.apply_rlimits(rlimits)

    def apply_personality(self, personality: Personality, warn: Callable[[str], None]) -> None:
        process_attrs.apply_personality(personality, warn=warn)

    def apply_scheduler(self, scheduler: Scheduler) -> None:
        process_attrs.apply_scheduler(scheduler)

    def apply_io_priority(self, io_priority: IOPriority) -> None:
        process_attrs.apply_io_priority(io_priority)

    def apply_cpu_affinity(self, affinity: ExecCPUAffinity, initial: bool) -> None:
        process_attrs.apply_exec_cpu_affinity(affinity, initial=initial)

    def apply_user_and_capabilities(
        self, user: User, caps: Capabilities | None, warn: Callable[[str], None], exec_gid: int | None = None
    ) -> None:
        """process.user and process.capabilities (unknown capability names: a warning, config.md); exec_gid:
        capabilities.switch_user's."""
        capabilities.apply_user_and_capabilities(user, caps, warn=warn, unknown="warn", exec_gid=exec_gid)

    def set_no_new_privileges(self) -> None:
        capabilities.set_no_new_privileges()

    def load_seccomp(self, plan: FilterPlan) -> int | None:
        """Load a compiled filter into this process: the notify fd, if the filter has SCMP_ACT_NOTIFY rules."""
        from engine.linux import seccomp as libseccomp  # loaded already by whoever compiled the plan

        return libseccomp.load_plan(plan)


KERNEL: Kernel = Kernel()


class use:
    """`with use(kernel):` makes `kernel` the one the setup code calls, for the block (a test's double)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.previous: Kernel | None = None

    def __enter__(self) -> Kernel:
        global KERNEL
        self.previous, KERNEL = KERNEL, self.kernel
        return self.kernel

    def __exit__(self, *exc: object) -> None:
        global KERNEL
        assert self.previous is not None
        KERNEL = self.previous
