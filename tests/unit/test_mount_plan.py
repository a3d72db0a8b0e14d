"""The container's filesystem through the kernel seam (engine/linux/kernel.py), without root: the mount plan of
engine/setup/rootfs.py, masking and read-only paths (setup/masking.py), /dev (setup/devices.py) and pivot_into.

Path resolution is real (openat2 inside a temporary rootfs, which needs no privilege); the mounts, device nodes
and ownership changes are recorded by tests/kernel_double.py. The integration tests (test_container_setup,
tests/security/test_mounts.py, test_masked_paths.py) prove that the real calls do what is recorded here.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.linux import kernel, mountfd
from engine.linux import syscalls as sc
from engine.linux.paths import O_PATH
from engine.setup import cgroupfs, devices, masking
from engine.setup import rootfs as rootfs_setup
from tests.kernel_double import RecordingKernel

RDONLY = mountfd.MOUNT_ATTR_RDONLY


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A small rootfs: /proc/kcore (file), /proc/acpi (directory), /dev with pts, a planted symlink escaping."""
    root = tmp_path / "rootfs"
    for d in ("proc/acpi", "proc/sys", "dev/pts", "etc", "host"):
        (root / d).mkdir(parents=True)
    (root / "proc" / "kcore").write_text("")
    (root / "proc" / "link").symlink_to("/etc")
    (root / "evil").symlink_to("../../host")
    return root


@pytest.fixture
def double(root: Path) -> Iterator[RecordingKernel]:
    with kernel.use(RecordingKernel(root)) as recording:
        yield recording  # type: ignore[misc]


@pytest.fixture
def root_fd(root: Path) -> Iterator[int]:
    fd = os.open(root, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    yield fd
    os.close(fd)


# --- masking ------------------------------------------------------------------------------------------------


def test_masks_a_file_with_the_null_device_and_a_directory_with_an_empty_read_only_tmpfs(
    double: RecordingKernel, root_fd: int
) -> None:
    dev_null = masking.open_dev_null(root_fd)  # the rootfs has none: the host's, proved to be char 1:3
    try:
        masking.mask_paths(root_fd, ["/proc/kcore", "/proc/acpi", "/proc/missing", "/proc/link", "/etc/x/y"], dev_null)
    finally:
        os.close(dev_null)
    assert double.calls == [
        ("bind_fd", "/dev/null", "/proc/kcore", False, 0, 0),
        (
            "new_filesystem",
            "tmpfs",
            "tmpfs",
            [("size", "0k"), ("mode", "755"), ("ro", None)],
            mountfd.MOUNT_ATTR_RDONLY,
        ),
        ("attach", "<new tmpfs>", "/proc/acpi"),
    ]  # nothing for what is missing, nor for a symlink planted at the path


def test_a_dev_null_that_is_not_the_null_device_is_not_used(root: Path, root_fd: int) -> None:
    (root / "dev" / "null").symlink_to("/proc/kcore")  # CVE-2025-31133: an image aliasing its /dev/null
    fd = masking.open_dev_null(root_fd)
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == "/dev/null"  # the host's, not the container's
        assert os.fstat(fd).st_rdev == os.makedev(1, 3)
    finally:
        os.close(fd)


def test_readonly_paths_are_cloned_onto_themselves_read_only(double: RecordingKernel, root_fd: int) -> None:
    masking.readonly_paths(root_fd, ["/proc/sys", "/proc/link", "/proc/nothing"])
    assert double.calls == [("bind_fd", "/proc/sys", "/proc/sys", True, mountfd.MOUNT_ATTR_RDONLY, 0)]


# --- /dev -----------------------------------------------------------------------------------------------------


def test_default_devices_then_linux_devices_then_the_symlinks(
    double: RecordingKernel, root: Path, root_fd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devices, "in_user_namespace", lambda: False)
    linux_devices = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600, "uid": 7, "gid": 8},
        {"path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2},  # skipped, as runc: pts/ptmx stays
    ]
    devices.populate_dev(root_fd, linux_devices, has_dev_mount=True)
    made = [
        (path, major, minor, stat.S_IFMT(mode), mode & 0o777) for _, path, mode, major, minor in double.names("mknod")
    ]
    assert made == [
        ("/dev/null", 1, 3, stat.S_IFCHR, 0o666),
        ("/dev/zero", 1, 5, stat.S_IFCHR, 0o666),
        ("/dev/full", 1, 7, stat.S_IFCHR, 0o666),
        ("/dev/random", 1, 8, stat.S_IFCHR, 0o666),
        ("/dev/urandom", 1, 9, stat.S_IFCHR, 0o666),
        ("/dev/tty", 5, 0, stat.S_IFCHR, 0o666),
        ("/dev/fuse", 10, 229, stat.S_IFCHR, 0o600),
    ]
    assert double.names("chown") == [("chown", "/dev/fuse", 7, 8)]
    assert stat.S_IMODE((root / "dev" / "fuse").stat().st_mode) == 0o600  # fileMode despite the umask
    links = {name: os.readlink(root / "dev" / name) for name in ("fd", "stdin", "stdout", "stderr", "ptmx")}
    assert links == {
        "fd": "/proc/self/fd",
        "stdin": "/proc/self/fd/0",
        "stdout": "/proc/self/fd/1",
        "stderr": "/proc/self/fd/2",
        "ptmx": "pts/ptmx",
    }


def test_without_a_dev_mount_only_linux_devices(double: RecordingKernel, root: Path, root_fd: int) -> None:
    devices.populate_dev(root_fd, [{"path": "/dev/a/b", "type": "b", "major": 8, "minor": 0}], has_dev_mount=False)
    assert [call[1] for call in double.names("mknod")] == ["/dev/a/b"]
    assert not (root / "dev" / "fd").exists()


def test_in_a_user_namespace_a_device_is_the_hosts_bound(
    double: RecordingKernel, root: Path, root_fd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devices, "in_user_namespace", lambda: True)
    devices.populate_dev(root_fd, [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}], has_dev_mount=False)
    assert double.calls == [("bind_fd", "/dev/null", "/dev/null", False, 0, 0)]  # host's -> the rootfs's
    assert (root / "dev" / "null").is_file()  # the bind's mount point, made inside the rootfs


def test_an_existing_file_that_is_not_the_device_is_an_error(double: RecordingKernel, root: Path, root_fd: int) -> None:
    (root / "dev" / "sda").write_text("not a device")
    with pytest.raises(devices.DeviceError, match=r"^linux.devices\[0\]: /dev/sda exists and is not the requested"):
        devices.populate_dev(root_fd, [{"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}], False)
    assert double.calls == []


# --- config mounts --------------------------------------------------------------------------------------------


def test_the_mount_plan_of_a_config(double: RecordingKernel, root: Path, tmp_path: Path) -> None:
    source = tmp_path / "data"
    source.mkdir()
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "ro"]},
        {"destination": "/data", "type": "bind", "source": str(source), "options": ["rbind", "ro", "nosuid"]},
        {"destination": "/evil/inside", "type": "tmpfs", "source": "tmpfs", "options": ["rprivate"]},
    ]
    readonly_later = rootfs_setup.setup_mounts(str(root), mounts, str(tmp_path), False, [])
    try:
        assert len(readonly_later) == 1  # /dev: read-only once everything beneath it exists (make_readonly)
        rootfs_setup.make_readonly(readonly_later)
    finally:
        rootfs_setup.close_all(readonly_later)
    proc_attrs = mountfd.MOUNT_ATTR_NOSUID | mountfd.MOUNT_ATTR_NOEXEC | mountfd.MOUNT_ATTR_NODEV
    calls = [call for call in double.calls if call[0] != "mknod"]
    assert calls == [
        ("new_filesystem", "proc", "proc", [], proc_attrs),  # per-mount flags: attributes, not options
        ("set_attrs", "<new proc>", 0, 0, 0, False),
        ("set_attrs", "<new proc>", 0, 0, 0, True),
        ("attach", "<new proc>", "/proc"),
        # ro left off: the tmpfs on /dev stays writable until make_readonly
        ("new_filesystem", "tmpfs", "tmpfs", [("mode", "755")], mountfd.MOUNT_ATTR_NOSUID),
        ("set_attrs", "<new tmpfs>", 0, 0, 0, False),
        ("set_attrs", "<new tmpfs>", 0, 0, 0, True),
        ("attach", "<new tmpfs>", "/dev"),
        # a clone of the source, a slave of the host's mount, its flags while detached, then attached
        ("clone_path", str(source), True),
        ("set_attrs", str(source), 0, 0, sc.MS_SLAVE, True),
        ("set_attrs", str(source), mountfd.MOUNT_ATTR_RDONLY | mountfd.MOUNT_ATTR_NOSUID, 0, 0, False),
        ("set_attrs", str(source), 0, 0, 0, True),
        ("attach", str(source), "/data"),
        # /evil -> ../../host resolves inside the rootfs: the mount point is <rootfs>/host/inside
        ("new_filesystem", "tmpfs", "tmpfs", [], 0),
        ("set_attrs", "<new tmpfs>", 0, 0, 0, False),
        ("set_attrs", "<new tmpfs>", 0, 0, 0, True),
        ("attach", "<new tmpfs>", "/host/inside"),
        ("set_attrs", "<new tmpfs>", 0, 0, sc.MS_PRIVATE, True),
        # the default devices on the new /dev (recorded as mknod, left out above), then /dev read-only
        ("set_attrs", "<new tmpfs>", mountfd.MOUNT_ATTR_RDONLY, 0, 0, False),
    ]
    assert [call[1] for call in double.names("mknod")][:2] == ["/dev/null", "/dev/zero"]
    assert (root / "host" / "inside").is_dir() and not (tmp_path / "host").exists()


def test_proc_that_does_not_turn_out_to_be_proc_is_refused(root: Path, tmp_path: Path) -> None:
    class NotProc(RecordingKernel):
        def fs_type(self, fd: int) -> int:
            return 0x01021994  # tmpfs

    double = NotProc(root)
    mounts = [{"destination": "/proc", "type": "proc", "source": "proc"}]
    with kernel.use(double), pytest.raises(rootfs_setup.MountError, match=r"^mounts: /proc: after mounting proc"):
        rootfs_setup.setup_mounts(str(root), mounts, str(tmp_path), False, [])
    assert "attach" not in [call[0] for call in double.calls]


def test_proc_through_a_symlink_is_refused(double: RecordingKernel, root: Path, tmp_path: Path) -> None:
    (root / "etc" / "p").mkdir()
    (root / "lp").symlink_to("etc/p")
    with pytest.raises(rootfs_setup.MountError, match="not through a symlink"):
        rootfs_setup.setup_mounts(str(root), [{"destination": "/lp", "type": "proc", "source": "proc"}], "/", False, [])
    assert double.calls == []


# --- propagation and pivot_root -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "before", "after"),
    [
        (None, sc.MS_SLAVE, 0),
        ("rshared", sc.MS_SLAVE, sc.MS_SHARED),
        ("private", sc.MS_PRIVATE, sc.MS_PRIVATE),
        ("unbindable", sc.MS_PRIVATE, sc.MS_UNBINDABLE),
    ],
)
def test_root_propagation_before_and_after_pivot(
    double: RecordingKernel, root: Path, given: str | None, before: int, after: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert rootfs_setup.set_root_propagation(given) == after
    rootfs_setup.bind_rootfs(str(root))
    monkeypatch.chdir(root)  # pivot_into changes directory
    rootfs_setup.pivot_into(str(root), no_pivot=False, propagation=after)
    expected = [
        ("mount", None, "/", None, sc.MS_REC | before, None),
        ("mount", str(root), "/", None, sc.MS_BIND | sc.MS_REC, None),  # onto itself: a mount point to pivot into
        ("pivot_root", ".", "."),
        ("mount", None, ".", None, sc.MS_SLAVE | sc.MS_REC, None),  # the old root, so our unmount stays ours
        ("umount", ".", sc.MNT_DETACH),
    ]
    if after:
        expected.append(("mount", None, "/", None, after, None))
    assert double.calls == expected


def test_an_unknown_propagation_mounts_nothing(double: RecordingKernel) -> None:
    with pytest.raises(rootfs_setup.MountError, match=r"^linux.rootfsPropagation: unknown value 'sideways'$"):
        rootfs_setup.set_root_propagation("sideways")
    assert double.calls == []


CGROUP_MOUNT = {
    "destination": "/sys/fs/cgroup",
    "type": "cgroup",
    "source": "cgroup",
    "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
}


def cgroup_calls(double: RecordingKernel) -> list[tuple[object, ...]]:
    return [c for c in double.calls if c[0] == "mount" and str(c[2]).startswith("/sys/fs/cgroup/")]


def test_a_cgroup_mount_in_a_new_cgroup_namespace_binds_the_namespaces_root(
    double: RecordingKernel, root: Path, tmp_path: Path
) -> None:
    # The intermediate read its cgroups just before it unshared the cgroup namespace (InitPlan.cgroup_hierarchies):
    # the namespace's root, bound from the host's hierarchies instead of mounted fresh (a walk of every cgroup on
    # the host per mount, in the kernel).
    ns_root = [
        cgroupfs.Hierarchy("memory", "cgroup", "memory", "/engine/c1"),
        cgroupfs.Hierarchy("unified", "cgroup2", "", "/engine/c1"),
    ]
    rootfs_setup.setup_mounts(str(root), [CGROUP_MOUNT], str(tmp_path), True, [], cgroup_ns_root=ns_root)
    flags = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_RELATIME
    assert cgroup_calls(double) == [
        ("mount", "/sys/fs/cgroup/memory/engine/c1", "/sys/fs/cgroup/memory", None, sc.MS_BIND | sc.MS_REC, None),
        ("mount", None, "/sys/fs/cgroup/memory", None, sc.MS_BIND | sc.MS_REMOUNT | flags, None),
        ("mount", "/sys/fs/cgroup/unified/engine/c1", "/sys/fs/cgroup/unified", None, sc.MS_BIND | sc.MS_REC, None),
        ("mount", None, "/sys/fs/cgroup/unified", None, sc.MS_BIND | sc.MS_REMOUNT | flags, None),
    ]


def test_a_cgroup_namespace_whose_root_is_unknown_mounts_each_hierarchy_fresh(
    double: RecordingKernel, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A namespace joined by path (its root is not ours to know), or a caller that read nothing: as before.
    host = [cgroupfs.Hierarchy("memory", "cgroup", "memory", "/")]
    monkeypatch.setattr(rootfs_setup, "host_hierarchies", lambda: host)
    rootfs_setup.setup_mounts(str(root), [CGROUP_MOUNT], str(tmp_path), True, [])
    flags = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_RELATIME
    assert cgroup_calls(double) == [("mount", "cgroup", "/sys/fs/cgroup/memory", "cgroup", flags, "memory")]
