"""Stages of the container's init and of exec's join through the kernel seam (engine/linux/kernel.py), without
root: what the init does after pivot_root and in which order, how exec joins a container's namespaces, the
cgroup mounts of setup/cgroupfs.py and the chroot of setup/host_mount_ns.py.

The fork-level stages (create's intermediate child, the init's wait on the exec fifo, exec's two children) stay
integration-only: they are processes talking over engine/channel.py, whose messages tests/unit/test_channel.py
covers. The integration tests prove the real calls do what is recorded here.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import exec as engine_exec
from engine import init
from engine.linux import kernel, mountfd
from engine.linux import syscalls as sc
from engine.process_setup import SetupError
from engine.setup import cgroupfs, host_mount_ns
from state import process as proc_state
from tests.kernel_double import RecordingKernel


@pytest.fixture
def double(tmp_path: Path) -> Iterator[RecordingKernel]:
    with kernel.use(RecordingKernel(tmp_path)) as recording:
        yield recording  # type: ignore[misc]


class RecordingProcFS:
    """Stands in for the init's own procfs (engine.linux.procfs.ProcFS): records the writes into /proc."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def write(self, name: str, data: bytes) -> None:
        self.log.append(("proc write", name, data))


def test_after_pivot_root_the_init_finishes_in_runcs_order(
    double: RecordingKernel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """cwd made before anything turns read-only, the deferred read-only mounts, then "/", hostname, domainname,
    sysctls through engine's procfs, then rlimits (prepare_exec): all before create is told Ready."""
    monkeypatch.chdir(tmp_path)
    writes: list[Any] = []
    tree = os.memfd_create("<new tmpfs>")  # a read-only-later tmpfs, as setup_mounts returns them
    cfg = {
        "root": {"readonly": True},
        "hostname": "box",
        "domainname": "example.org",
        "linux": {"sysctl": {"net.ipv4.ip_forward": "1", "kernel.msgmax": "8192"}},
        "process": {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin"], "rlimits": [{"type": "RLIMIT_CORE"}]},
    }
    env, executable = init._finish_setup(cfg, RecordingProcFS(writes), [tree])  # type: ignore[arg-type]
    assert double.calls == [
        ("set_attrs", "<new tmpfs>", mountfd.MOUNT_ATTR_RDONLY, 0, 0, False),
        ("set_attrs", "/", mountfd.MOUNT_ATTR_RDONLY, 0, 0, False),  # root.readonly
        ("set_hostname", "box"),
        ("set_domainname", "example.org"),
        ("apply_rlimits", [{"type": "RLIMIT_CORE"}]),
    ]
    assert writes == [("proc write", "sys/net/ipv4/ip_forward", b"1"), ("proc write", "sys/kernel/msgmax", b"8192")]
    assert env["PATH"] == "/bin" and executable.endswith("/sh")
    with pytest.raises(OSError):
        os.fstat(tree)  # make_readonly closed it


def test_a_hostname_without_a_uts_namespace_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    failing = RecordingKernel(tmp_path, fail={"set_hostname": PermissionError(1, "Operation not permitted")})
    cfg = {"hostname": "box", "process": {"args": ["sh"]}}
    with kernel.use(failing), pytest.raises(SetupError, match=r"^hostname: cannot set 'box': Operation not perm"):
        init._finish_setup(cfg, RecordingProcFS([]), [])  # type: ignore[arg-type]
    assert [call[0] for call in failing.calls] == ["set_hostname"]


def test_linux_namespaces_paths_are_opened_first_then_joined_user_first(
    double: RecordingKernel, tmp_path: Path
) -> None:
    paths = [("network", "/proc/self/ns/net"), ("user", "/proc/self/ns/user"), ("mount", "/proc/self/ns/mnt")]
    init.join_namespaces(paths)
    assert [(call[0], call[2]) for call in double.calls] == [
        ("setns", sc.CLONE_NEWUSER),
        ("setns", sc.CLONE_NEWNET),
        ("setns", sc.CLONE_NEWNS),
    ]
    with pytest.raises(SetupError, match=r"^linux.namespaces: ipc path /nonexistent: No such file or directory$"):
        init.join_namespaces([("network", "/proc/self/ns/net"), ("ipc", "/nonexistent")])


@pytest.fixture
def other_namespaces() -> Iterator[int]:
    """A process in a user, uts and network namespace of its own (an unprivileged user namespace)."""
    child = subprocess.Popen(["unshare", "--user", "--uts", "--net", "sleep", "60"])
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{child.pid}/ns/user") == os.readlink("/proc/self/ns/user"):
            if child.poll() is not None or time.monotonic() > deadline:
                pytest.skip("this host does not let an unprivileged process make a user namespace")
            time.sleep(0.01)
        yield child.pid
    finally:
        child.kill()
        child.wait()


def test_exec_joins_only_the_inits_own_namespaces_user_first(
    double: RecordingKernel, other_namespaces: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The init shares the host's mount namespace here: no setns(mnt), its root taken by chroot, last."""
    monkeypatch.chdir(tmp_path)  # the chroot's fchdir moves us
    joined_user = engine_exec.join_namespaces(other_namespaces, proc_state.start_time(other_namespaces))
    assert joined_user is True
    assert [call[2] if call[0] == "setns" else call for call in double.calls] == [
        sc.CLONE_NEWUSER,
        sc.CLONE_NEWUTS,
        sc.CLONE_NEWNET,
        ("chroot", "."),
    ]


def test_exec_refuses_a_reused_pid(double: RecordingKernel, other_namespaces: int) -> None:
    with pytest.raises(SetupError, match=r"^the container's init has exited$"):
        engine_exec.join_namespaces(other_namespaces, 1)  # not its start time: another process
    assert double.calls == []


def test_cgroup_v1_hierarchies_under_a_tmpfs(double: RecordingKernel, tmp_path: Path) -> None:
    target = tmp_path / "sys" / "fs" / "cgroup"
    target.mkdir(parents=True)
    hierarchies = [
        cgroupfs.Hierarchy("cpu,cpuacct", "cgroup", "cpu,cpuacct", "/c1"),
        cgroupfs.Hierarchy("memory", "cgroup", "memory", "/c1"),
    ]
    reopen = lambda: os.open(target, os.O_PATH | os.O_DIRECTORY)  # noqa: E731
    cgroupfs.mount_cgroups(str(target), reopen, sc.MS_RDONLY | sc.MS_NOSUID, True, hierarchies)
    fs_flags = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    assert double.calls == [
        ("mount", "tmpfs", "/sys/fs/cgroup", "tmpfs", fs_flags, "mode=755"),
        ("mount", "cgroup", "/sys/fs/cgroup/cpu,cpuacct", "cgroup", sc.MS_RDONLY | sc.MS_NOSUID, "cpu,cpuacct"),
        ("mount", "cgroup", "/sys/fs/cgroup/memory", "cgroup", sc.MS_RDONLY | sc.MS_NOSUID, "memory"),
        ("mount", None, "/sys/fs/cgroup", None, sc.MS_REMOUNT | fs_flags | sc.MS_RDONLY, "mode=755"),
    ]


def test_in_the_hosts_mount_namespace_the_root_is_a_chroot(
    double: RecordingKernel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    host_mount_ns.enter_root(str(tmp_path))  # the chroot is recorded, so "/proc" below is the host's real one
    assert double.calls == [("chroot", ".")]
