"""Which file gets which value: the v1 and v2 managers' update() against a fake cgroup directory.

The directory holds empty regular files named like the kernel's; fs.write is wrapped to record every write (a
missing file still fails with ENOENT, as on cgroupfs). No root needed: the real kernel is exercised by
tests/integration/test_cgroups.py.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from engine.cgroups import convert, fs
from engine.cgroups.fs import CgroupError
from engine.cgroups.v1 import V1Manager
from engine.cgroups.v2 import V2Manager

V2_FILES = {
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma",
    "cgroup.freeze": "0",
    "memory.max": "max",
    "memory.swap.max": "max",
    "memory.low": "0",
    "memory.current": "1000",
    "cpu.weight": "100",
    "cpu.max": "max 100000",
    "cpu.max.burst": "0",
    "cpu.idle": "0",
    "cpuset.cpus": "",
    "cpuset.mems": "",
    "pids.max": "max",
    "io.weight": "default 100",
    "io.max": "",
    "rdma.max": "",
    "memory.high": "max",
}


class Recorder:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writes: list[tuple[str, str]] = []

        def write(where: str, directory: str, name: str, value: str) -> None:
            if not os.path.exists(os.path.join(directory, name)):
                err = OSError(errno.ENOENT, os.strerror(errno.ENOENT))
                raise fs.WriteError(where, os.path.join(directory, name), value, err)
            self.writes.append((name, value))
            with open(os.path.join(directory, name), "w") as f:  # truncating, as a cgroup file reads back anew
                f.write(value)

        monkeypatch.setattr(fs, "write", write)

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.writes if n == name]


def make_tree(base: Path, files: dict[str, str]) -> Path:
    leaf = base / "c"
    leaf.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (leaf / name).write_text(content)
    (base / "cgroup.controllers").write_text(files.get("cgroup.controllers", ""))
    (base / "cgroup.subtree_control").write_text("")
    return leaf


@pytest.fixture
def v2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[V2Manager, Recorder]:
    leaf = make_tree(tmp_path, V2_FILES)
    mgr = V2Manager("/c", {"unified": str(leaf)}, {"unified": str(tmp_path)})
    return mgr, Recorder(monkeypatch)


# ----- cgroup v2 -----------------------------------------------------------------------------------------------


def test_v2_memory(v2: tuple[V2Manager, Recorder]) -> None:
    mgr, rec = v2
    mgr.update({"memory": {"limit": 100 << 20, "swap": 300 << 20, "reservation": 50 << 20, "kernel": 1}})
    assert rec.writes == [
        ("memory.swap.max", str(200 << 20)),
        ("memory.max", str(100 << 20)),
        ("memory.low", str(50 << 20)),
    ]
    assert mgr.warnings == [
        "linux.resources.memory.kernel: ignored: kernel memory limits are deprecated and gone from current kernels "
        "(runc ignores them too)"
    ]
    rec.writes.clear()
    mgr.update({"memory": {"limit": -1}})
    assert rec.writes == [("memory.swap.max", "max"), ("memory.max", "max")]
    rec.writes.clear()
    mgr.update({"memory": {"limit": 0, "useHierarchy": True, "disableOOMKiller": False}})  # 0 is "unset", as runc
    assert rec.writes == []


@pytest.mark.parametrize(
    ("memory", "message"),
    [
        ({"swappiness": 10}, "memory.swappiness: cgroup v2 has no per-cgroup swappiness"),
        ({"disableOOMKiller": True}, "memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer"),
        ({"useHierarchy": False}, "memory.useHierarchy: cgroup v2 accounting is always hierarchical"),
        ({"limit": 100, "swap": 50}, "memory.swap: 50 is below memory.limit 100"),
        ({"swap": 50}, "memory.swap: a swap limit needs a memory limit"),
        ({"limit": -5}, "memory.limit: -5 is neither -1"),
        ({"limit": 500, "checkBeforeUpdate": True}, r"memory.limit: 500 is not above the current usage 1000"),
    ],
)
def test_v2_memory_errors(v2: tuple[V2Manager, Recorder], memory: dict[str, Any], message: str) -> None:
    mgr, rec = v2
    with pytest.raises(CgroupError, match="^linux.resources." + message):
        mgr.update({"memory": memory, "pids": {"limit": 3}})
    if "limit" not in memory and "swap" not in memory:
        assert rec.writes == []  # an unconvertible setting is refused before anything is written


def test_v2_cpu(v2: tuple[V2Manager, Recorder]) -> None:
    mgr, rec = v2
    mgr.update({"cpu": {"shares": 1024, "quota": 50000, "period": 200000, "burst": 1000, "idle": 1, "cpus": "0-1"}})
    assert rec.writes == [  # cpuset first: one controller order for v1 and v2 (controllers.ORDER)
        ("cpuset.cpus", "0-1"),
        ("cpu.weight", "100"),
        ("cpu.idle", "1"),
        ("cpu.max.burst", "1000"),
        ("cpu.max", "50000 200000"),
    ]
    rec.writes.clear()
    mgr.update({"cpu": {"period": 100000}})  # the quota already set stays
    mgr.update({"cpu": {"quota": -1}})  # and the period stays when only the quota changes
    assert rec.values("cpu.max") == ["50000 100000", "max 100000"]
    with pytest.raises(CgroupError, match=r"^linux\.resources\.cpu\.realtimeRuntime: cgroup v2 has no real-time"):
        mgr.update({"cpu": {"realtimeRuntime": 1000}})
    with pytest.raises(CgroupError, match=r"^linux\.resources\.cpu\.burst: 5000 is larger than quota 1000"):
        mgr.update({"cpu": {"quota": 1000, "burst": 5000}})
    mgr.update({"cpu": {"shares": 2}})
    assert rec.values("cpu.weight")[-1] == str(convert.shares_to_weight(2)) == "1"


def test_v2_pids(v2: tuple[V2Manager, Recorder]) -> None:
    mgr, rec = v2
    for limit in (0, -1, 42):
        mgr.update({"pids": {"limit": limit}})
    mgr.update({"pids": {}})
    assert rec.values("pids.max") == ["0", "max", "42"]


def test_v2_io(v2: tuple[V2Manager, Recorder], tmp_path: Path) -> None:
    mgr, rec = v2
    mgr.update(
        {
            "blockIO": {
                "weight": 500,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 1000}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 0}],
            }
        }
    )
    assert rec.values("io.weight") == ["4950", "8:0 10000"]
    assert rec.values("io.max") == ["8:0 rbps=1048576", "8:16 wiops=max"]
    # With BFQ's own file the weight goes there unconverted.
    (tmp_path / "c" / "io.bfq.weight").write_text("default 100")
    mgr.update({"blockIO": {"weight": 500}})
    assert rec.values("io.bfq.weight") == ["500"]
    with pytest.raises(CgroupError, match=r"^linux\.resources\.blockIO\.leafWeight: cgroup v2 has no leaf weights"):
        mgr.update({"blockIO": {"leafWeight": 10}})
    with pytest.raises(CgroupError, match=r"weightDevice\[0\]\.minor: required"):
        mgr.update({"blockIO": {"weightDevice": [{"major": 8, "weight": 10}]}})


def test_v2_hugetlb_rdma_unified(v2: tuple[V2Manager, Recorder], tmp_path: Path) -> None:
    mgr, rec = v2
    size = (convert.hugepage_sizes() or [None])[0]
    if size is not None:
        (tmp_path / "c" / f"hugetlb.{size}.max").write_text("max")
        mgr.update({"hugepageLimits": [{"pageSize": size, "limit": 4 << 20}]})
        assert rec.values(f"hugetlb.{size}.max") == [str(4 << 20)]
        assert rec.values("cgroup.subtree_control") == ["+hugetlb"]  # enabled in the parent first
    with pytest.raises(CgroupError, match=r"^linux\.resources\.hugepageLimits\[0\]\.pageSize: \'3MB\' is not a huge"):
        mgr.update({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]})
    mgr.update({"rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 100}, "rxe3": {"hcaObjects": 7}}})
    assert rec.values("rdma.max") == ["mlx5_1 hca_handle=3 hca_object=100", "rxe3 hca_object=7"]
    with pytest.raises(CgroupError, match=r'^linux\.resources\.rdma\["mlx-2"\]: needs hcaHandles or hcaObjects'):
        mgr.update({"rdma": {"mlx-2": {}}})
    rec.writes.clear()
    mgr.update({"unified": {"memory.high": "1000000", "io.max": "8:0 rbps=1\n8:16 wbps=2\n"}, "pids": {"limit": 5}})
    # unified comes last (it overrides the converted values) and a multi-line value is one write per line.
    assert rec.writes[0] == ("pids.max", "5")
    assert rec.values("memory.high") == ["1000000"]
    assert rec.values("io.max") == ["8:0 rbps=1", "8:16 wbps=2"]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("misc.max", r'unified\["misc.max"\]: the misc controller is not available in the cgroup2 hierarchy'),
        ("../x", r'unified\["../x"\]: must be a file name'),
        ("freeze", r"unified\.freeze: must be a cgroup file name of the form CONTROLLER.PARAMETER"),
        ("cgroup.nothing", r'unified\["cgroup.nothing"\]: writing 1 to .*/c/cgroup.nothing: No such file'),
    ],
)
def test_v2_unified_errors_name_the_key(v2: tuple[V2Manager, Recorder], key: str, message: str) -> None:
    mgr, _ = v2
    with pytest.raises(CgroupError, match=r"^linux\.resources\." + message):
        mgr.update({"unified": {key: "1"}})


def test_v2_network_is_an_error(v2: tuple[V2Manager, Recorder]) -> None:
    mgr, _ = v2
    with pytest.raises(CgroupError, match=r"^linux\.resources\.network: cgroup v2 has no net_cls/net_prio"):
        mgr.update({"network": {"classID": 1}})


def test_v2_missing_controller_is_named(v2: tuple[V2Manager, Recorder], tmp_path: Path) -> None:
    mgr, _ = v2
    (tmp_path / "c" / "pids.max").unlink()
    (tmp_path / "c" / "cgroup.controllers").write_text("memory")
    with pytest.raises(CgroupError, match=r"^linux\.resources\.pids\.limit: the pids controller is not enabled for "):
        mgr.update({"pids": {"limit": 1}})


def test_v2_state_round_trip(v2: tuple[V2Manager, Recorder]) -> None:
    from engine.cgroups import load_manager

    mgr, _ = v2
    mgr.bpf_programs = [17]
    again = load_manager(mgr.to_json())
    assert isinstance(again, V2Manager)
    assert again.to_json() == mgr.to_json()
    assert again.join_path_for_exec() == [mgr.dir]


# ----- cgroup v1 -----------------------------------------------------------------------------------------------

V1_FILES = {
    "memory": {
        "memory.limit_in_bytes": "9223372036854771712",
        "memory.memsw.limit_in_bytes": "9223372036854771712",
        "memory.soft_limit_in_bytes": "0",
        "memory.swappiness": "60",
        "memory.oom_control": "",
        "memory.use_hierarchy": "1",
    },
    "cpu": {"cpu.shares": "1024", "cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000", "cpu.cfs_burst_us": "0"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "pids": {"pids.max": "max"},
    "blkio": {
        "blkio.bfq.weight": "100",
        "blkio.bfq.weight_device": "",
        "blkio.throttle.read_bps_device": "",
        "blkio.throttle.write_iops_device": "",
    },
}


@pytest.fixture
def v1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[V1Manager, Recorder]:
    dirs, mounts = {}, {}
    for name, files in V1_FILES.items():
        dirs[name] = str(make_tree(tmp_path / name, files))
        mounts[name] = str(tmp_path / name)
    return V1Manager("/c", dirs, mounts), Recorder(monkeypatch)


def test_v1_memory_orders_limit_and_swap(v1: tuple[V1Manager, Recorder], tmp_path: Path) -> None:
    mgr, rec = v1
    mgr.update({"memory": {"limit": 100, "swap": 200, "reservation": 50, "swappiness": 0, "disableOOMKiller": True}})
    # Growing from "unlimited" (a huge number) down: the limit first, then memsw, so memsw >= limit throughout.
    assert rec.writes == [
        ("memory.limit_in_bytes", "100"),
        ("memory.memsw.limit_in_bytes", "200"),
        ("memory.soft_limit_in_bytes", "50"),
        ("memory.swappiness", "0"),
        ("memory.oom_control", "1"),
    ]
    rec.writes.clear()
    mgr.update({"memory": {"limit": 1000, "swap": 2000}})  # current limit 100 < new swap: memsw first
    assert rec.writes == [("memory.memsw.limit_in_bytes", "2000"), ("memory.limit_in_bytes", "1000")]
    rec.writes.clear()
    mgr.update({"memory": {"limit": -1}})  # unlimited memory with no swap given: swap unlimited too
    assert rec.writes == [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")]
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory\.swappiness: 101 is outside 0-100"):
        mgr.update({"memory": {"swappiness": 101}})
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory\.swap: 10 is below memory\.limit 20"):
        mgr.update({"memory": {"limit": 20, "swap": 10}})
    os.unlink(tmp_path / "memory" / "c" / "memory.memsw.limit_in_bytes")
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory\.swap: this kernel has no swap accounting"):
        mgr.update({"memory": {"limit": 20, "swap": 30}})


def test_v1_cpu_cpuset_pids_blkio(v1: tuple[V1Manager, Recorder]) -> None:
    mgr, rec = v1
    mgr.update(
        {
            "cpu": {"shares": 1024, "quota": 20000, "period": 50000, "burst": 1000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 0},
            "blockIO": {
                "weight": 300,
                "weightDevice": [{"major": 254, "minor": 0, "weight": 200}],
                "throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1000}],
                "throttleWriteIOPSDevice": [{"major": 254, "minor": 0, "rate": 10}],
            },
        }
    )
    assert rec.writes == [
        ("cpuset.cpus", "0"),
        ("cpuset.mems", "0"),
        ("cpu.shares", "1024"),
        ("cpu.cfs_period_us", "50000"),
        ("cpu.cfs_burst_us", "1000"),
        ("cpu.cfs_quota_us", "20000"),
        ("pids.max", "0"),
        ("blkio.bfq.weight", "300"),  # no blkio.weight (CFQ): BFQ's files
        ("blkio.bfq.weight_device", "254:0 200"),
        ("blkio.throttle.read_bps_device", "254:0 1000"),
        ("blkio.throttle.write_iops_device", "254:0 10"),
    ]


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"network": {"classID": 1}}, r"network\.classID: the net_cls cgroup controller is not mounted"),
        ({"network": {"priorities": [{"name": "eth0", "priority": 1}]}}, r"network\.priorities: the net_prio"),
        ({"rdma": {"mlx5_1": {"hcaHandles": 1}}}, r"rdma: the rdma cgroup controller is not mounted"),
        ({"unified": {"pids.max": "1"}}, r"unified: this host has no cgroup2 \(unified\) hierarchy mounted"),
        ({"blockIO": {"leafWeight": 10}}, r"blockIO\.leafWeight: writing 10 to .*/blkio\.leaf_weight: No such file"),
        ({"cpu": {"quota": 10, "burst": 20}}, r"cpu\.burst: 20 is larger than quota 10"),
        ({"devices": [{"allow": True}]}, r"devices: the devices cgroup controller is not mounted"),
    ],
)
def test_v1_errors_name_the_field(v1: tuple[V1Manager, Recorder], resources: dict[str, Any], message: str) -> None:
    mgr, rec = v1
    with pytest.raises(CgroupError, match=r"^linux\.resources\." + message):
        mgr.update({**resources, "pids": {"limit": 7}})
    if "blockIO" not in resources:
        assert rec.writes == []  # refused before anything was written


def test_v1_error_root_for_update_documents(v1: tuple[V1Manager, Recorder]) -> None:
    # `engine update --resources file.json`: paths are relative to that document.
    mgr, _ = v1
    with pytest.raises(CgroupError, match=r"^memory\.swappiness: 101 is outside 0-100$"):
        mgr.update({"memory": {"swappiness": 101}}, json_root="")


# ----- what a systemd driver uses --------------------------------------------------------------------------------


def test_adopt_writes_into_directories_it_did_not_make(v2: tuple[V2Manager, Recorder], tmp_path: Path) -> None:
    """A systemd scope's cgroup exists already (with the init in it): adopt() applies the resources, device
    policy included, makes nothing, and destroy() leaves the directory to its owner."""
    mgr, rec = v2
    (tmp_path / "c" / "cgroup.procs").write_text("4242\n")
    installed: list[str] = []
    import engine.cgroups.controllers.devices as device_controller

    def install(d: str, target: Any, w: str) -> list[int]:
        installed.append(d)
        return [7]

    original = device_controller.install_program
    device_controller.install_program = install  # type: ignore[assignment]
    try:
        mgr.adopt({"pids": {"limit": 10}})
    finally:
        device_controller.install_program = original  # type: ignore[assignment]
    assert rec.values("pids.max") == ["10"] and installed == [mgr.dir] and mgr.bpf_programs == [7]
    assert mgr.created == [] and mgr.warnings == []
    mgr.bpf_programs = []
    mgr.destroy()
    assert (tmp_path / "c").is_dir()


def test_manager_at_and_the_driver_in_the_state(tmp_path: Path) -> None:
    from engine.cgroups import load_manager, manager_at
    from engine.cgroups.layout import Hierarchy, Layout

    hybrid = Layout(
        "hybrid",
        (Hierarchy("/sys/fs/cgroup/memory", "/", "memory", ("memory",)),),
        Hierarchy("/sys/fs/cgroup/unified", "/", "unified", ()),
    )
    dirs = {
        "memory": "/sys/fs/cgroup/memory/system.slice/x.scope",
        "unified": "/sys/fs/cgroup/unified/system.slice/x.scope",
    }
    mgr = manager_at(dirs, layout=hybrid)
    assert isinstance(mgr, V1Manager) and mgr.mode == "hybrid" and mgr.dirs == dirs
    assert mgr.mounts == {"memory": "/sys/fs/cgroup/memory", "unified": "/sys/fs/cgroup/unified"}
    with pytest.raises(CgroupError, match=r"^no cpu hierarchy on this host \(it has: memory, unified\)$"):
        manager_at({"cpu": "/x"}, layout=hybrid)
    v2_host = Layout("v2", (), Hierarchy("/sys/fs/cgroup", "/", "unified", ()))
    assert isinstance(manager_at({"unified": "/sys/fs/cgroup/x.scope"}, layout=v2_host), V2Manager)
    state = mgr.to_json()
    assert state["driver"] == "cgroupfs" and load_manager(state).dirs == dirs
    import importlib.util

    if importlib.util.find_spec("engine.cgroups.systemd") is None:  # once the driver exists, it loads its records
        with pytest.raises(CgroupError, match="made by the systemd driver, which this engine does not have"):
            load_manager({**state, "driver": "systemd"})
    with pytest.raises(CgroupError, match="unknown driver 'x'"):
        load_manager({**state, "driver": "x"})


def test_read_gives_the_whole_file_as_text(tmp_path: Path) -> None:
    # fs.read reads through posix, in chunks: a cgroup.procs of a big cgroup is longer than one chunk.
    pids = "".join(f"{pid}\n" for pid in range(100000, 130000))
    (tmp_path / "cgroup.procs").write_text(pids)
    (tmp_path / "memory.max").write_text("max\n")
    assert fs.read(str(tmp_path), "cgroup.procs") == pids
    assert fs.pids_in(str(tmp_path)) == list(range(100000, 130000))
    assert fs.read(str(tmp_path) + "/", "memory.max") == "max\n"
    assert fs.read_or(str(tmp_path), "nothing", "default") == "default"
    with pytest.raises(FileNotFoundError):
        fs.read(str(tmp_path), "nothing")
    assert fs.pids_in(str(tmp_path / "gone")) == []
