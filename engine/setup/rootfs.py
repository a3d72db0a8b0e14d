"""The container's filesystem: propagation, the rootfs bind, config mounts in order, /dev, then pivot_root.

Runs inside the container init (new mount namespace), before pivot_root. Every mount destination is resolved
inside the rootfs (engine.linux.paths) to an O_PATH fd, checked against /proc (runc's checkProcMount, after the
image's symlinks are followed), and the mount is made detached (engine.linux.mountfd), given its flags, and
attached onto that fd: nothing is looked up twice.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from engine import record
from engine.errors import EngineError, suppress
from engine.linux import kernel, mountfd
from engine.linux import syscalls as sc
from engine.linux.mount_attr import MOUNT_ATTR_RDONLY
from engine.linux.paths import O_PATH, create_file_in_root, fd_path, mkdir_all_in_root, open_in_root, same_file
from engine.linux.procfs import ProcFS
from engine.rootless.hooks import mount_refusal_hint
from engine.setup.cgroupfs import Hierarchy, host_hierarchies, mount_cgroups
from engine.setup.devices import populate_dev
from engine.setup.mount_options import MountPlan, parse_mount_options

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from engine.spec.typed import Device, Mount

PROPAGATION = {
    "shared": sc.MS_SHARED,
    "slave": sc.MS_SLAVE,
    "private": sc.MS_PRIVATE,
    "unbindable": sc.MS_UNBINDABLE,
}


class MountError(EngineError):
    pass


def set_root_propagation(rootfs_propagation: str | None) -> int:
    """Stop our mounts leaking to the host: every mount becomes a slave (runc's default), or private.

    config-linux.md: rootfsPropagation is "the rootfs's mount propagation", so it is applied to the rootfs
    mount after pivot_root (pivot_into), not here to the host's "/": pivot_root refuses a shared new root,
    and an unbindable "/" would make the rootfs bind below fail. Before that, "/" is rslave so the host's
    mounts still reach a slave rootfs, or rprivate for private and unbindable, which receive nothing.

    Returns the propagation pivot_into gives the rootfs once it is the root (0: none asked for).
    """
    name = (rootfs_propagation or "slave").removeprefix("r")
    if name not in PROPAGATION:
        raise MountError(f"linux.rootfsPropagation: unknown value {rootfs_propagation!r}")
    before = sc.MS_SLAVE if name in ("slave", "shared") else sc.MS_PRIVATE
    kernel.KERNEL.mount(None, "/", None, sc.MS_REC | before)
    return PROPAGATION[name] if rootfs_propagation else 0


def bind_rootfs(rootfs: str) -> None:
    """pivot_root needs the new root to be a mount point: bind it onto itself."""
    kernel.KERNEL.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)


def _is_bind(mount: Mount) -> bool:
    options = mount.get("options", [])
    return mount.get("type") == "bind" or "bind" in options or "rbind" in options


def bind_source(mount: Mount, bundle: str) -> str:
    source = mount.get("source")
    if not source:
        raise MountError(f"mounts: {mount['destination']}: a bind mount needs a source")
    return source if os.path.isabs(source) else os.path.join(bundle, source)  # config.md: relative to the bundle


def open_bind_sources(mounts: list[Mount], bundle: str) -> dict[int, int]:
    """Detached copies (open_tree) of every bind source, made by `engine create` as the host's root, keyed by
    the mount's index: in a user namespace the init runs as a root that may not reach the sources (runc does
    the same). The init attaches them with move_mount."""
    fds: dict[int, int] = {}
    try:
        for i, mount in enumerate(mounts):
            if _is_bind(mount):
                source = bind_source(mount, bundle)
                recursive = "rbind" in mount.get("options", [])
                try:
                    fds[i] = kernel.KERNEL.clone_path(source, recursive)
                except OSError as err:
                    raise MountError(f"mounts[{i}]: {mount['destination']}: source {source}: {err.strerror}") from None
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


# runc's checkProcMount: below /proc only these files may be mounted over (lxcfs emulates them); anything else
# could hide or redirect what engine and the container's protections rely on (CVE-2019-16884, CVE-2019-19921).
ALLOWED_UNDER_PROC = (
    "cpuinfo",
    "diskstats",
    "meminfo",
    "stat",
    "swaps",
    "uptime",
    "loadavg",
    "slabinfo",
    "net/dev",
    "sys/kernel/ns_last_pid",
    "sys/crypto/fips_enabled",
)


def where_it_lands(root_fd: int, rootfs: str, destination: str, proc: ProcFS) -> str:
    """The container path a destination really names once the image's symlinks are followed (inside the root):
    the longest prefix that exists is resolved, the missing rest (which cannot hold a symlink yet) appended."""
    parts = [p for p in destination.split("/") if p and p != "."]
    for i in range(len(parts), -1, -1):
        try:
            fd = open_in_root(root_fd, "/".join(parts[:i]) or "/", O_PATH)
        except (FileNotFoundError, NotADirectoryError):
            continue
        try:
            host = proc.fd_target(fd)
        finally:
            os.close(fd)
        inside = "/" + os.path.relpath(host, rootfs) if host != rootfs else "/"
        return posixpath.normpath(posixpath.join(inside, *parts[i:]))
    return posixpath.normpath("/" + "/".join(parts))


def check_proc_destination(landing: str, mount: Mount, source_fd: int | None) -> None:
    """Refuse a mount at or under /proc (where the destination really lands), except a procfs on /proc itself
    and runc's short list of files lxcfs emulates."""
    if landing != "/proc" and not landing.startswith("/proc/"):
        return
    destination = mount["destination"]
    steered = "" if posixpath.normpath(destination) == landing else f" (it leads to {landing})"
    if landing == "/proc":
        if mount.get("type") == "proc" and not _is_bind(mount):
            return
        if source_fd is not None and kernel.KERNEL.fs_type(source_fd) == sc.PROC_SUPER_MAGIC:
            return
        raise MountError(f"mounts: {destination}{steered}: only a procfs may be mounted on /proc")
    if landing[len("/proc/") :] in ALLOWED_UNDER_PROC:
        return
    raise MountError(f"mounts: {destination}{steered}: mounting over a path inside /proc is not allowed")


def _split_data(data: str) -> list[tuple[str, str | None]]:
    """mount(2)'s data string -> fsconfig options: "a=1,b" -> [("a", "1"), ("b", None)]. A comma inside double
    quotes (an SELinux context=\"...\") does not split."""
    items, current, quoted = [], "", False
    for ch in data:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    out: list[tuple[str, str | None]] = []
    for item in items:
        if item:
            key, sep, value = item.partition("=")
            out.append((key, value if sep else None))
    return out


def _new_filesystem(fstype: str, source: str | None, plan: MountPlan) -> int:
    """A detached mount of a new filesystem with the options and flags `plan` asks for."""
    unsupported = plan.flags & ~(mountfd.SB_FLAGS_OK | mountfd.PER_MOUNT_FLAGS | mountfd.ATIME_FLAGS | IGNORED_FLAGS)
    if unsupported:
        raise MountError(f"mount flags {unsupported:#x} are not supported on a new {fstype} mount")
    options = _split_data(plan.data)
    options += [(name, None) for flag, name in mountfd.SB_FLAG_NAMES.items() if plan.flags & flag]
    attr_set, _ = mountfd.attrs_from_flags(plan.flags)
    return kernel.KERNEL.new_filesystem(fstype, source, options, attr_set)


# Flags with nothing to do on a new mount: MS_SILENT only quiets the kernel log, MS_I_VERSION is always on.
IGNORED_FLAGS = sc.MS_SILENT | sc.MS_I_VERSION


def mount_one(
    root_fd: int,
    mount: Mount,
    bundle: str,
    own_cgroup_ns: bool,
    hierarchies: list[Hierarchy],
    source_fd: int | None = None,
    *,
    rootfs: str = "",
    proc: ProcFS | None = None,
    readonly_later: list[int] | None = None,
) -> None:
    """One entry of config.json "mounts", at its destination resolved inside the rootfs.

    The mount is made detached first (a clone of the bind source, or a new filesystem), gets every flag its
    options ask for while nobody can see it, and is then attached onto the destination's fd (move_mount):
    there is no remount and no second lookup of the destination (CVE-2021-30465).

    With `readonly_later`, a read-only tmpfs or /dev is attached read-write and its mount fd appended there
    instead: make_readonly() finishes it once the mounts, devices and /dev/console beneath it exist."""
    destination = mount["destination"]
    fstype = mount.get("type")
    source = mount.get("source")
    plan = parse_mount_options(mount.get("options", []))
    deferred = readonly_later is not None and is_readonly_later(mount, plan.flags)
    if deferred:
        plan = record.replace(plan, flags=plan.flags & ~sc.MS_RDONLY)
    if plan.idmap:
        # Refused rather than silently mounted without the mapping the config asked for.
        raise MountError(f"mounts: {destination}: idmap/ridmap mounts are not supported yet")
    if plan.flags & sc.MS_REMOUNT:
        raise MountError(f"mounts: {destination}: the remount option is not supported")
    bind = _is_bind(mount)
    tree, own_tree = -1, False  # the detached mount; a source_fd stays the caller's to close
    try:
        if bind:
            source = bind_source(mount, bundle)
            if source_fd is None:
                try:
                    tree, own_tree = kernel.KERNEL.clone_path(source, plan.recursive_bind), True
                except OSError as err:
                    raise MountError(f"mounts: {destination}: source {source}: {err.strerror}") from None
            else:
                tree = source_fd
            source_is_dir = stat.S_ISDIR(os.fstat(tree).st_mode)
        if proc is not None:
            check_proc_destination(where_it_lands(root_fd, rootfs, destination, proc), mount, tree if bind else None)
        try:
            if bind and not source_is_dir:
                target_fd = create_file_in_root(root_fd, destination)
            else:
                target_fd = mkdir_all_in_root(root_fd, destination)
        except OSError as err:
            raise MountError(
                f"mounts: {destination}: cannot make the mount point in the rootfs: {err.strerror}"
            ) from None
        try:
            if fstype in _EXPECTED_FS and not bind:
                _refuse_symlinks(root_fd, destination, target_fd, fstype)
            if fstype == "cgroup" and not bind:
                mount_cgroups(
                    fd_path(target_fd),
                    lambda: open_in_root(root_fd, destination, O_PATH | os.O_DIRECTORY),
                    plan.flags,
                    own_cgroup_ns,
                    hierarchies,
                )
                return
            if bind:
                attr_set, attr_clr = mountfd.attrs_from_flags(plan.flags)
                attr_clr |= mountfd.attrs_cleared_by(plan.cleared_flags)
                # Shared with the host's mount (a clone of a shared mount is its peer): receive, never send.
                kernel.KERNEL.set_attrs(tree, propagation=sc.MS_SLAVE, recursive=True)
            else:
                tree, own_tree = _new_filesystem(fstype or "none", source or fstype or "none", plan), True
                attr_set = attr_clr = 0  # fsmount set them
            try:
                kernel.KERNEL.set_attrs(tree, attr_set, attr_clr)
            except PermissionError:
                # In a user namespace the source's nosuid/nodev/noexec are locked: keep them, as runc does.
                kernel.KERNEL.set_attrs(tree, attr_set, attr_clr & ~mountfd.LOCKABLE)
            # rro, rnosuid, ...: the whole tree, submounts included.
            kernel.KERNEL.set_attrs(tree, plan.rec_attr_set, plan.rec_attr_clr, recursive=True)
            if fstype in _EXPECTED_FS and not bind and kernel.KERNEL.fs_type(tree) != _EXPECTED_FS[fstype]:
                raise MountError(f"mounts: {destination}: after mounting {fstype} it is not {fstype}")
            kernel.KERNEL.attach(tree, target_fd)
            # Attached, the tree fd names the new mount itself: propagation acts on it, not on a path.
            for propagation in plan.propagations:
                recursive = bool(propagation & sc.MS_REC)
                kernel.KERNEL.set_attrs(tree, propagation=propagation & ~sc.MS_REC, recursive=recursive)
            if deferred and readonly_later is not None:
                readonly_later.append(tree)  # ours now: make_readonly() sets the flag on this mount and closes it
                own_tree = False
        except OSError as err:
            raise MountError(
                f"mounts: mounting {source or fstype} on {destination} (type {fstype}): {err.strerror or err}"
                + mount_refusal_hint(fstype, err.errno)
            ) from None
        finally:
            os.close(target_fd)
    finally:
        if own_tree:
            os.close(tree)


def _refuse_symlinks(root_fd: int, destination: str, target_fd: int, fstype: str) -> None:
    """proc and sysfs only on an ordinary directory reached without symlinks (CVE-2023-28642: a /proc that is
    a symlink puts procfs somewhere the LSM rules for /proc do not cover)."""
    try:
        fd = open_in_root(root_fd, destination, O_PATH | os.O_DIRECTORY, no_symlinks=True)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise MountError(
                f"mounts: {destination}: {fstype} must be mounted on an ordinary directory, not through a symlink"
            ) from None
        raise
    try:
        if not same_file(fd, target_fd):
            raise MountError(f"mounts: {destination}: changed while {fstype} was being mounted")
    finally:
        os.close(fd)


_EXPECTED_FS = {"proc": sc.PROC_SUPER_MAGIC, "sysfs": sc.SYSFS_MAGIC}


def is_readonly_later(mount: Mount, flags: int) -> bool:
    """runc's rule (finalizeRootfs): a tmpfs, or whatever new filesystem is mounted on /dev, asked to be read-only
    is mounted read-write and turned read-only at the end, so that what goes beneath it (mount points, devices,
    the /dev symlinks, /dev/console) can be made first. The superblock stays read-write, as under runc: only the
    mount is read-only. A bind gets its flags at once (runc remounts a bind right away too)."""
    if not flags & sc.MS_RDONLY or _is_bind(mount) or mount.get("type") == "cgroup":
        return False
    return mount.get("type") == "tmpfs" or "/" + posixpath.normpath(mount["destination"]).lstrip("/") == "/dev"


def make_readonly(mount_fds: list[int]) -> None:
    """The second half of is_readonly_later: set MOUNT_ATTR_RDONLY on each mount by its own fd (the mount
    itself, wherever pivot_root put it: no path is looked up again), then close the fds."""
    try:
        for fd in mount_fds:
            kernel.KERNEL.set_attrs(fd, MOUNT_ATTR_RDONLY)
    except OSError as err:
        raise MountError(f"mounts: making a tmpfs or /dev read-only: {err.strerror or err}") from None
    finally:
        close_all(mount_fds)


def close_all(fds: list[int]) -> None:
    for fd in fds:
        with suppress(OSError):
            os.close(fd)
    fds.clear()


def check_kernel_fs(root_fd: int, destination: str, fstype: str) -> None:
    """After mounting proc or sysfs, make sure that what the destination now resolves to really is that
    filesystem: maskedPaths, readonlyPaths and sysctl writes trust /proc and /sys to be the kernel's."""
    fd = open_in_root(root_fd, destination, O_PATH | os.O_DIRECTORY)
    try:
        if kernel.KERNEL.fs_type(fd) != _EXPECTED_FS[fstype]:
            raise MountError(f"mounts: {destination}: after mounting {fstype} it is not {fstype}")
    finally:
        os.close(fd)


def setup_mounts(
    rootfs: str,
    mounts: list[Mount],
    bundle: str,
    own_cgroup_ns: bool,
    devices: list[Device],
    source_fds: dict[int, int] | None = None,
    proc: ProcFS | None = None,
    cgroup_ns_root: list[Hierarchy] | None = None,
) -> list[int]:
    """Mount config.json's mounts in order, then /dev's devices. Returns the fds of the mounts that are still to
    be made read-only (is_readonly_later): the caller passes them to make_readonly() after /dev/console.

    cgroup_ns_root: our new cgroup namespace's root in each hierarchy, read before it was unshared (InitPlan's
    cgroup_hierarchies). A "cgroup" mount then binds those directories from the host's hierarchies: the very view
    a fresh mount in the namespace gives (the same superblock, rooted at the namespace's root), without the
    kernel's v1 mount path, which first walks every cgroup of the host's cgroup2 tree (one per container here:
    cgroup_lock_and_drain_offline, perf). bench/README.md "At scale": 0.3 -> 1.8 ms per container for the 9
    fresh mounts with 1000 containers running, a flat 0.1 ms for the binds."""
    root_fd = os.open(rootfs, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    hierarchies: list[Hierarchy] = []
    if cgroup_ns_root is not None:
        hierarchies, own_cgroup_ns = cgroup_ns_root, False  # bound from the host's view, as without a namespace
    elif any(m.get("type") == "cgroup" for m in mounts):
        hierarchies = host_hierarchies()
    source_fds = source_fds or {}
    readonly_later: list[int] = []
    try:
        for i, mount in enumerate(mounts):
            mount_one(
                root_fd,
                mount,
                bundle,
                own_cgroup_ns,
                hierarchies,
                source_fds.get(i),
                rootfs=rootfs,
                proc=proc,
                readonly_later=readonly_later,
            )
        # runc makes the default devices only when /dev is not bind-mounted from the host.
        has_dev_mount = any(m["destination"].rstrip("/") == "/dev" and not _is_bind(m) for m in mounts)
        populate_dev(root_fd, devices, has_dev_mount)
    except BaseException:
        close_all(readonly_later)
        raise
    finally:
        os.close(root_fd)
    return readonly_later


def pivot_into(rootfs: str, no_pivot: bool, propagation: int = 0) -> None:
    """Make rootfs the container's /. pivot_root(".", ".") stacks the old root on top; detach it right away.
    Then give it `propagation` (what set_root_propagation returned for linux.rootfsPropagation)."""
    os.chdir(rootfs)
    if no_pivot:
        detach_host_mounts(rootfs)
        kernel.KERNEL.mount(rootfs, "/", None, sc.MS_MOVE)
        kernel.KERNEL.chroot(".")
    else:
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            kernel.KERNEL.pivot_root(".", ".")
            # "." is still the new root here (the old one is stacked on top of it, but a path walk does not
            # step from its starting point onto a mount above): go to the old root itself, or the rslave below
            # would hit the container's own mounts and undo every shared mount and rootfsPropagation (as runc).
            os.fchdir(old_root)
        finally:
            os.close(old_root)
        # The old root must not propagate our unmount to the host.
        kernel.KERNEL.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        kernel.KERNEL.umount(".", sc.MNT_DETACH)
    os.chdir("/")
    if propagation:
        try:
            kernel.KERNEL.mount(None, "/", None, propagation)
        except OSError as err:
            raise MountError(f"linux.rootfsPropagation: {err.strerror}") from None


def detach_host_mounts(rootfs: str) -> None:
    """--no-pivot: chroot leaves the host's mounts in the container's mount namespace, under the root. A full
    procfs or sysfs among them lets a process that makes its own user namespace mount a fresh one (the kernel
    allows that only while a fully visible one exists), so detach every mount that is neither the rootfs, inside
    it, nor above it; what cannot be detached (locked in a user namespace) and is a procfs or sysfs is covered
    with an empty read-only tmpfs (as runc's msMoveRoot)."""
    inside = rootfs.rstrip("/") + "/"
    entries = []
    with open("/proc/self/mountinfo") as f:  # the host's /proc: we have not left its root yet
        for line in f:
            fields, _, rest = line.partition(" - ")
            point = _unescape(fields.split()[4])
            if point == rootfs or point.startswith(inside) or inside.startswith(point.rstrip("/") + "/"):
                continue  # the rootfs, its submounts, and the mounts it lives on
            entries.append((point, rest.split()[0]))
    for point, fstype in sorted(entries, key=lambda e: e[0].count("/"), reverse=True):
        try:
            kernel.KERNEL.umount(point, sc.MNT_DETACH)
        except OSError as err:
            if err.errno == errno.ENOENT:
                continue  # gone with a mount above it
            if err.errno not in (errno.EINVAL, errno.EPERM) or fstype not in ("proc", "sysfs"):
                continue  # not a mount any more (detached with its parent), or harmless to leave
            kernel.KERNEL.mount(
                "tmpfs", point, "tmpfs", sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "size=0k"
            )


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040)."""
    if "\\" not in field:
        return field
    out, i = "", 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out += chr(int(field[i + 1 : i + 4], 8))
            i += 4
        else:
            out += field[i]
            i += 1
    return out


def make_root_readonly() -> None:
    """root.readonly: the rootfs mount read-only (mount_setattr keeps its nosuid/nodev/noexec as they are)."""
    fd = os.open("/", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        kernel.KERNEL.set_attrs(fd, MOUNT_ATTR_RDONLY)
    finally:
        os.close(fd)
