"""engine/setup/cgroupfs.py's host_hierarchies: the hierarchies a "cgroup" mount shows, read in the intermediate child
of every create whose config mounts cgroups in a cgroup namespace (the default config), so its reads count."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from engine.setup import cgroupfs
from engine.setup.cgroupfs import Hierarchy, host_hierarchies

# A hybrid host as this one: v1 hierarchies, the named systemd one, the unified cgroup2 beside them.
FILES = {
    "/proc/self/mountinfo": """\
22 1 0:21 / / rw,relatime - ext4 /dev/vda rw
31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 31 0:31 / /sys/fs/cgroup/net_cls,net_prio rw,relatime - cgroup cgroup rw,net_cls,net_prio
35 31 0:32 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
36 31 0:33 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
""",
    "/proc/self/cgroup": "5:name=systemd:/user\n4:net_cls,net_prio:/\n3:memory:/engine/c1\n2:cpu:/engine/c1\n0::/u\n",
    "/proc/cgroups": "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\nmemory\t3\t1\t1\n"
    "net_cls\t4\t1\t1\nnet_prio\t4\t1\t1\n",
}


def test_reads_each_file_once(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []

    def fake_open(path: str) -> io.StringIO:
        opened.append(path)
        return io.StringIO(FILES[path])

    monkeypatch.setattr(cgroupfs, "open", fake_open, raising=False)
    assert host_hierarchies() == [
        Hierarchy("cpu", "cgroup", "cpu", "/engine/c1"),
        Hierarchy("memory", "cgroup", "memory", "/engine/c1"),
        Hierarchy("net_cls,net_prio", "cgroup", "net_cls,net_prio", "/"),
        Hierarchy("systemd", "cgroup", "none,name=systemd", "/user"),
        Hierarchy("unified", "cgroup2", "", "/u"),
    ]
    # /proc/cgroups once, not once per option of every v1 mount (14 times here, ~40 us each)
    assert sorted(opened) == sorted(FILES)


def test_this_host() -> None:
    if not Path("/sys/fs/cgroup").is_dir():
        pytest.skip("no cgroupfs")
    found = host_hierarchies()
    assert found and all(h.fstype in ("cgroup", "cgroup2") for h in found)
