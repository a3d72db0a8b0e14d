"""engine/cgroups/attach_warmup.py: which cgroup.procs create writes its own pid into (its own cgroup's, or none)."""

from __future__ import annotations

from engine.cgroups.attach_warmup import procs_file

HYBRID_MOUNTS = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
"""


def test_the_first_cgroup_mount_that_holds_our_cgroup() -> None:
    cgroup = "4:cpu,cpuacct:/user.slice/a\n1:name=systemd:/user.slice/b\n0::/user.slice/c\n"
    assert procs_file(cgroup, HYBRID_MOUNTS) == "/sys/fs/cgroup/unified/user.slice/c/cgroup.procs"
    assert procs_file("4:cpu,cpuacct:/x\n", HYBRID_MOUNTS) == "/sys/fs/cgroup/cpu,cpuacct/x/cgroup.procs"
    assert procs_file("1:name=systemd:/\n", HYBRID_MOUNTS) == "/sys/fs/cgroup/systemd/cgroup.procs"


def test_pure_v2() -> None:
    mounts = "30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
    assert procs_file("0::/system.slice/x.service\n", mounts) == "/sys/fs/cgroup/system.slice/x.service/cgroup.procs"


def test_a_subtree_mount_only_for_a_cgroup_inside_it() -> None:
    mounts = "40 23 0:27 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    assert procs_file("0::/kubepods/pod1/c\n", mounts) == "/sys/fs/cgroup/c/cgroup.procs"
    assert procs_file("0::/kubepods/pod1\n", mounts) == "/sys/fs/cgroup/cgroup.procs"
    assert procs_file("0::/kubepods/pod10\n", mounts) is None  # not below /kubepods/pod1: another cgroup's file
    assert procs_file("0::/elsewhere\n", mounts) is None


def test_no_cgroup_mount_no_file() -> None:
    assert procs_file("0::/\n", "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n") is None
