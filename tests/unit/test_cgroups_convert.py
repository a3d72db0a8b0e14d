"""engine.cgroups.convert: the v1 -> v2 value conversions, and layout/path rules (pure functions)."""

from __future__ import annotations

import pytest

from engine.cgroups import convert, layout
from engine.cgroups.fs import CgroupError, jpath


@pytest.mark.parametrize(
    ("shares", "weight"),
    [
        (1, 1),  # below the kernel's minimum: clamped like the kernel would
        (2, 1),
        (512, 59),  # 10 ** ((81 + 1125) / 612 - 7/34) = 58.17 -> 59
        (1024, 100),  # the v1 default maps to the v2 default: the point of the formula
        (2048, 174),
        (262144, 10000),
        (10**9, 10000),
    ],
)
def test_shares_to_weight_fixed_points(shares: int, weight: int) -> None:
    assert convert.shares_to_weight(shares) == weight


def test_shares_to_weight_is_monotonic_and_in_range() -> None:
    values = [convert.shares_to_weight(s) for s in range(2, 262145, 97)]
    assert values == sorted(values)
    assert min(values) >= 1 and max(values) <= 10000


def test_old_linear_formula_kept_for_reference() -> None:
    assert convert.old_shares_to_weight(1024) == 39
    assert convert.old_shares_to_weight(2) == 1
    assert convert.old_shares_to_weight(262144) == 10000


@pytest.mark.parametrize(("weight", "io"), [(10, 1), (500, 4950), (1000, 10000), (100, 910)])
def test_blkio_weight_to_io_weight(weight: int, io: int) -> None:
    assert convert.blkio_weight_to_io_weight(weight) == io


@pytest.mark.parametrize(
    ("swap", "limit", "expected"),
    [
        (None, None, None),  # nothing to do
        (None, -1, -1),  # unlimited memory, no swap given: unlimited swap too
        (-1, 100, -1),
        (-1, None, -1),
        (None, 100, None),
        (300, 100, 200),  # memory+swap 300 with memory 100: 200 of swap
        (100, 100, 0),  # equal: no swap at all
    ],
)
def test_swap_conversion(swap: int | None, limit: int | None, expected: int | None) -> None:
    assert convert.swap_v2(swap, limit) == expected


@pytest.mark.parametrize(
    ("swap", "limit", "reason"), [(100, None, "needs a memory limit"), (100, -1, "needs"), (50, 100, "below")]
)
def test_swap_conversion_errors(swap: int, limit: int | None, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        convert.swap_v2(swap, limit)


def test_v2_bytes() -> None:
    assert convert.v2_bytes(-1) == "max"
    assert convert.v2_bytes(4096) == "4096"


@pytest.mark.parametrize(("size", "name"), [(64 << 10, "64KB"), (2 << 20, "2MB"), (1 << 30, "1GB"), (16 << 30, "16GB")])
def test_hugepage_names_follow_the_kernel(size: int, name: str) -> None:
    assert convert.hugepage_name(size) == name


def test_hugepage_sizes_from_sysfs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for kb in (2048, 1048576, 64):
        (tmp_path / f"hugepages-{kb}kB").mkdir()
    assert convert.hugepage_sizes(str(tmp_path)) == ["64KB", "2MB", "1GB"]
    assert convert.hugepage_sizes(str(tmp_path / "missing")) == []


def test_jpath_quotes_non_identifiers() -> None:
    assert jpath("linux.resources", "devices", 0, "major") == "linux.resources.devices[0].major"
    assert jpath("linux.resources", "unified", "memory.high") == 'linux.resources.unified["memory.high"]'
    assert jpath("linux.resources", "rdma", "mlx5-1", "hcaHandles") == 'linux.resources.rdma["mlx5-1"].hcaHandles'


# ----- layout ------------------------------------------------------------------------------------------------------

KNOWN = frozenset(
    {
        *("cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer"),
        *("net_cls", "net_prio", "pids", "hugetlb", "perf_event", "rdma"),
    }
)

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
90 1 0:32 / /mnt/memory\\040copy rw,relatime - cgroup cgroup rw,memory
"""
HYBRID_CGROUP = "3:cpu,cpuacct:/\n2:memory:/box/me\n1:name=systemd:/user.slice\n0::/user.slice/session-1.scope\n"

V2_MOUNTINFO = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"

DOCKER_MOUNTINFO = """\
122 120 0:20 /docker/abc /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices
124 120 0:22 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
"""


def test_layout_hybrid() -> None:
    lay = layout.parse(HYBRID_CGROUP, HYBRID_MOUNTINFO, KNOWN)
    assert lay.mode == "hybrid"
    assert [h.name for h in lay.v1] == ["cpu,cpuacct", "memory", "name=systemd"]
    memory = lay.v1_for("memory")
    assert memory is not None and memory.mount_point == "/sys/fs/cgroup/memory"  # not the later bind mount
    assert memory.own == "/box/me"
    assert lay.v1_for("cpuacct") is lay.v1_for("cpu")
    assert lay.unified is not None and lay.unified.own == "/user.slice/session-1.scope"


def test_layout_v1_and_v2() -> None:
    v1 = layout.parse("2:memory:/\n", HYBRID_MOUNTINFO.replace("cgroup2 cgroup2", "tmpfs tmpfs"), KNOWN)
    assert v1.mode == "v1" and v1.unified is None
    v2 = layout.parse("0::/init.scope\n", V2_MOUNTINFO, KNOWN)
    assert v2.mode == "v2" and v2.v1 == () and v2.unified is not None
    with pytest.raises(CgroupError, match="no cgroup filesystem"):
        layout.parse("", "", KNOWN)


def test_cgroups_path_cleaning() -> None:
    assert layout.clean_cgroups_path(None, "c1") == "engine/c1"
    assert layout.clean_cgroups_path("", "c1") == "engine/c1"
    assert layout.clean_cgroups_path("/a//b/../c/", "x") == "/a/c"
    assert layout.clean_cgroups_path("a/b", "x") == "a/b"
    assert layout.clean_cgroups_path("../../a", "x") == "a"  # cannot climb above the base
    assert layout.clean_cgroups_path("/../../a", "x") == "/a"
    assert layout.clean_cgroups_path("system.slice:docker:1", "x") == "system.slice:docker:1"  # just a name
    for bad in ("/", "/..", ".", "a\nb"):
        with pytest.raises(CgroupError, match=r"linux\.cgroupsPath"):
            layout.clean_cgroups_path(bad, "x")
    with pytest.raises(CgroupError, match="cannot name a cgroup"):
        layout.clean_cgroups_path(None, "a/b")


def test_directory_in_each_hierarchy() -> None:
    lay = layout.parse(HYBRID_CGROUP, HYBRID_MOUNTINFO, KNOWN)
    memory, cpu = lay.v1_for("memory"), lay.v1_for("cpu")
    assert memory is not None and cpu is not None and lay.unified is not None
    # Absolute: from each mount point, whatever cgroup we are in.
    assert layout.directory_in(memory, "/engine/c") == "/sys/fs/cgroup/memory/engine/c"
    assert layout.directory_in(lay.unified, "/engine/c") == "/sys/fs/cgroup/unified/engine/c"
    # Relative: v1 below our own cgroup; cgroup2 below the parent of ours (runc's fs and fs2 drivers).
    assert layout.directory_in(memory, "c") == "/sys/fs/cgroup/memory/box/me/c"
    assert layout.directory_in(cpu, "c") == "/sys/fs/cgroup/cpu,cpuacct/c"
    assert layout.directory_in(lay.unified, "c") == "/sys/fs/cgroup/unified/user.slice/c"


def test_directory_in_a_bind_mounted_subtree() -> None:
    # Inside a container without a cgroup namespace: the mount shows /docker/abc, and so does our own path.
    lay = layout.parse("5:devices:/docker/abc\n4:memory:/docker/abc\n", DOCKER_MOUNTINFO, KNOWN)
    memory = lay.v1_for("memory")
    assert memory is not None and memory.root == "/docker/abc"
    assert layout.directory_in(memory, "c") == "/sys/fs/cgroup/memory/c"
    assert layout.directory_in(memory, "/c") == "/sys/fs/cgroup/memory/c"


# runc 1.1.5's memory sizes (go-units RAMInBytes), as `runc update --memory X` wrote them on this machine.
@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("50M", 50 << 20),
        ("50m", 50 << 20),
        ("50MB", 50 << 20),
        ("50MiB", 50 << 20),
        ("50mib", 50 << 20),
        ("1.5g", 3 << 29),
        ("1 g", 1 << 30),
        ("100", 100),
        ("100b", 100),
        ("0.5k", 512),
        ("50KB", 50 << 10),
        ("1t", 1 << 40),
        ("05m", 5 << 20),
        ("5 ", 5),
    ],
)
def test_ram_in_bytes(text: str, size: int) -> None:
    assert convert.ram_in_bytes(text) == size


@pytest.mark.parametrize(
    "text", ["1.2.3", "-5", "abc", "50Mx", "1e3", "", "+5", " 5", ".5m", "5.m", "\uff11", "99999999t"]
)
def test_ram_in_bytes_refuses_what_runc_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        convert.ram_in_bytes(text)


@pytest.mark.parametrize(
    ("flag", "text", "value"),
    [
        ("memory", "-1", -1),
        ("memory", "64M", 64 << 20),
        ("pids-limit", "0", None),  # runc 1.1.5: 0 changes nothing
        ("pids-limit", "-1", -1),
        ("blkio-weight", "0", None),
        ("cpu-share", "0", 0),  # 0 is unset for the cgroup code too
        ("cpu-quota", "-1", -1),
        ("cpuset-cpus", "0-1", "0-1"),
    ],
)
def test_update_flag_values(flag: str, text: str, value: object) -> None:
    from engine.commands.update import flag_value

    assert flag_value(flag, text) == value


@pytest.mark.parametrize(
    ("flag", "text", "message"),
    [
        ("memory", "abc", "update: invalid value for --memory: invalid size: 'abc'"),
        ("cpu-share", "-5", "update: invalid value for --cpu-share: '-5' is not an unsigned integer"),
        ("cpu-period", "abc", "update: invalid value for --cpu-period: 'abc' is not an unsigned integer"),
        ("pids-limit", "1.5", "update: invalid value for --pids-limit: '1.5' is not an integer"),
    ],
)
def test_update_flag_errors(flag: str, text: str, message: str) -> None:
    from engine.commands.update import flag_value
    from engine.errors import EngineError

    with pytest.raises(EngineError, match="^" + message.replace("(", r"\(")):
        flag_value(flag, text)
