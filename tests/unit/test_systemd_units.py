"""The systemd driver's pure parts: cgroupsPath -> unit and slice path, resources -> unit properties, device rules ->
DevicePolicy/DeviceAllow. The driver itself runs for real in the systemd guest (tests/systemd-guest)."""

from __future__ import annotations

import pytest

from engine.cgroups.devices import Emulator, container_rules
from engine.cgroups.fs import CgroupError
from engine.cgroups.systemd_units import (
    INFINITY,
    Unit,
    cpu_quota_properties,
    cpu_set_bits,
    device_properties,
    expand_slice,
    parse_cgroups_path,
    resource_properties,
    start_only_properties,
)


def props(resources: dict, v2: bool = True, version: int = 252, **kw) -> dict:
    """name -> (signature, value); a repeated name keeps its last value (what systemd ends up with)."""
    return {name: (sig, value) for name, sig, value in resource_properties(resources, v2=v2, version=version, **kw)}


# ----- cgroupsPath ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "unit", "cgroup"),
    [
        ("system.slice:libpod:abc", Unit("system.slice", "libpod-abc.scope"), "/system.slice/libpod-abc.scope"),
        (
            ":cri-containerd:c1",
            Unit("system.slice", "cri-containerd-c1.scope"),
            "/system.slice/cri-containerd-c1.scope",
        ),
        (None, Unit("system.slice", "engine-c1.scope"), "/system.slice/engine-c1.scope"),
        ("", Unit("system.slice", "engine-c1.scope"), "/system.slice/engine-c1.scope"),
        ("system.slice::x", Unit("system.slice", "-x.scope"), "/system.slice/-x.scope"),  # runc's spelling too
        (
            "kubepods-burstable-pod12.slice:cri-containerd:c9",
            Unit("kubepods-burstable-pod12.slice", "cri-containerd-c9.scope"),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/cri-containerd-c9.scope",
        ),
        ("-.slice:p:n", Unit("-.slice", "p-n.scope"), "/p-n.scope"),
    ],
)
def test_cgroups_path_names_a_scope_in_a_slice(path: str | None, unit: Unit, cgroup: str) -> None:
    assert parse_cgroups_path(path, "c1") == unit
    assert unit.cgroup == cgroup


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/engine/c1", r'is not "slice:prefix:name", the form --systemd-cgroup needs'),
        ("a:b", r'is not "slice:prefix:name"'),
        ("a.slice:b:c:d", r'is not "slice:prefix:name"'),
        ("system.slice:p:", r"has an empty name"),
        ("system.slice:p:pod.slice", r"names a slice \(pod.slice\); a container's processes need a scope"),
        ("system:p:n", r"'system' is not a slice unit name"),
        (".slice:p:n", r"'.slice' is not a slice unit name"),
        ("a/b.slice:p:n", r"'a/b.slice' is not a slice unit name"),
        ("a--b.slice:p:n", r"'a--b.slice': an empty component between dashes"),
        ("-a.slice:p:n", r"'-a.slice': an empty component"),
        ("a-.slice:p:n", r"'a-.slice': an empty component"),
        ("system.slice:p:n m", r"' ' cannot appear in a systemd unit name \(p-n m.scope\)"),
        ("system.slice:p:" + "x" * 300, r"is longer than 255 characters"),
    ],
)
def test_bad_cgroups_paths_are_refused_naming_the_field(path: str, message: str) -> None:
    with pytest.raises(CgroupError, match=r"^linux\.cgroupsPath: .*" + message):
        parse_cgroups_path(path, "c1")


def test_nested_slices_expand_to_their_ancestry() -> None:
    assert expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert expand_slice("machine.slice") == "/machine.slice"
    assert expand_slice("-.slice") == "/"


# ----- resources -------------------------------------------------------------------------------------------------


def test_memory_on_v2() -> None:
    got = props({"memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20}})
    assert got["MemoryMax"] == ("t", 64 << 20)
    assert got["MemoryLow"] == ("t", 32 << 20)
    assert got["MemorySwapMax"] == ("t", 32 << 20)  # swap is memory+swap in the spec, swap alone in v2


def test_unlimited_memory_is_infinity_and_zero_is_unset() -> None:
    got = props({"memory": {"limit": -1}})
    assert got["MemoryMax"] == ("t", INFINITY)
    assert got["MemorySwapMax"] == ("t", INFINITY)  # unlimited memory without a swap value: unlimited swap (runc)
    assert props({"memory": {"limit": 0, "reservation": 0}}) == {}


def test_swap_below_the_limit_is_refused_with_its_path() -> None:
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory\.swap: .* below memory\.limit"):
        props({"memory": {"limit": 100 << 20, "swap": 50 << 20}})


def test_memory_on_v1_is_memory_limit() -> None:
    assert props({"memory": {"limit": 1 << 30}}, v2=False) == {"MemoryLimit": ("t", 1 << 30)}


def test_cpu_shares_become_the_same_weight_as_the_cgroupfs_driver_writes() -> None:
    assert props({"cpu": {"shares": 1024}})["CPUWeight"] == ("t", 100)
    assert props({"cpu": {"shares": 2}})["CPUWeight"] == ("t", 1)
    assert props({"cpu": {"shares": 512}}, v2=False) == {"CPUShares": ("t", 512)}


def test_cpu_idle_is_weight_zero_from_systemd_252() -> None:
    warnings: list[str] = []
    got = props({"cpu": {"idle": 1, "shares": 1024}}, warn=warnings.append)
    assert got["CPUWeight"] == ("t", 0)
    assert "the unit gets idle" in warnings[0]
    assert props({"cpu": {"idle": 1}}, version=251) == {}


def test_cpu_quota_per_second_rounded_up_to_whole_percents() -> None:
    got = props({"cpu": {"quota": 50000, "period": 100000}})
    assert got["CPUQuotaPerSecUSec"] == ("t", 500000)
    assert got["CPUQuotaPeriodUSec"] == ("t", 100000)
    assert props({"cpu": {"quota": 12345, "period": 100000}})["CPUQuotaPerSecUSec"] == ("t", 130000)
    assert props({"cpu": {"quota": -1}})["CPUQuotaPerSecUSec"] == ("t", INFINITY)
    assert "CPUQuotaPeriodUSec" not in props({"cpu": {"quota": 50000}}, version=241)


def test_an_update_of_one_half_of_the_cpu_bandwidth_keeps_the_other() -> None:
    # The cgroupfs managers keep the half not given; systemd must end up with the same pair.
    assert cpu_quota_properties(None, 50000, 252, ("25000", "100000")) == [
        ("CPUQuotaPeriodUSec", "t", 50000),
        ("CPUQuotaPerSecUSec", "t", 500000),
    ]
    assert cpu_quota_properties(20000, None, 252, ("max", "40000")) == [
        ("CPUQuotaPeriodUSec", "t", 40000),
        ("CPUQuotaPerSecUSec", "t", 500000),
    ]
    assert cpu_quota_properties(None, None, 252) == []


def test_cpusets_are_little_endian_bitmasks() -> None:
    assert cpu_set_bits("0", "w") == b"\x01"
    assert cpu_set_bits("0-2,9", "w") == b"\x07\x02"
    assert props({"cpu": {"cpus": "1", "mems": "0"}})["AllowedCPUs"] == ("ay", b"\x02")
    assert "AllowedCPUs" not in props({"cpu": {"cpus": "1"}}, version=243)
    with pytest.raises(CgroupError, match=r"^linux\.resources\.cpu\.cpus: '1-x' is not a list"):
        props({"cpu": {"cpus": "1-x"}})


def test_pids_limit() -> None:
    assert props({"pids": {"limit": 20}}) == {"TasksMax": ("t", 20)}
    assert props({"pids": {"limit": -1}}) == {"TasksMax": ("t", INFINITY)}
    assert props({"pids": {"limit": 0}}) == {}  # no TasksMax spelling; the file gets 0


def test_io_weight() -> None:
    assert props({"blockIO": {"weight": 500}}) == {"IOWeight": ("t", 4950)}
    assert props({"blockIO": {"weight": 500}}, v2=False) == {"BlockIOWeight": ("t", 500)}


def test_unified_keys_systemd_knows_override_the_converted_ones() -> None:
    got = props(
        {
            "memory": {"limit": 1 << 30},
            "unified": {"memory.max": "max", "memory.high": "1000", "pids.max": "7", "cpu.max": "max 50000"},
        }
    )
    assert got["MemoryMax"] == ("t", INFINITY)
    assert got["MemoryHigh"] == ("t", 1000)
    assert got["TasksMax"] == ("t", 7)
    assert got["CPUQuotaPerSecUSec"] == ("t", INFINITY)
    assert "io.max" not in str(got)
    with pytest.raises(CgroupError, match=r'^linux\.resources\.unified\["memory\.high"\]: \'lots\' is not a number'):
        props({"unified": {"memory.high": "lots"}})


def test_oom_group_is_an_oom_policy_at_start() -> None:
    assert start_only_properties({"unified": {"memory.oom.group": "1"}}) == [("OOMPolicy", "s", "kill")]
    assert start_only_properties({}) == []


# ----- devices ---------------------------------------------------------------------------------------------------


def test_the_default_device_policy_is_an_exact_allow_list() -> None:
    got = device_properties(container_rules({}, "linux.resources"), v2=True)
    assert got[:2] == [("DevicePolicy", "s", "strict"), ("DeviceAllow", "a(ss)", [])]
    name, sig, entries = got[2]
    assert (name, sig) == ("DeviceAllow", "a(ss)")
    assert ("char-*", "m") in entries and ("block-*", "m") in entries
    assert ("/dev/char/1:3", "rwm") in entries  # /dev/null
    assert ("char-136", "rwm") in entries  # the ptys, any minor


def test_allow_all_is_no_policy() -> None:
    emu = Emulator(default_allow=True)
    assert device_properties(emu, v2=True) == [("DevicePolicy", "s", "auto"), ("DeviceAllow", "a(ss)", [])]


def test_what_systemd_cannot_say_is_left_to_our_program_on_v2_and_denied_on_v1() -> None:
    deny_list = Emulator(default_allow=True, exceptions={("c", 1, 3): "w"})
    assert device_properties(deny_list, v2=True) == [("DevicePolicy", "s", "auto"), ("DeviceAllow", "a(ss)", [])]
    warnings: list[str] = []
    assert device_properties(deny_list, v2=False, warn=warnings.append)[-1] == ("DeviceAllow", "a(ss)", [])
    assert "cannot express every device rule" in warnings[0]
    any_major = Emulator(exceptions={("c", None, 5): "r", ("c", 1, 3): "rw"})
    assert device_properties(any_major, v2=True)[0] == ("DevicePolicy", "s", "auto")
    assert device_properties(any_major, v2=False)[-1] == ("DeviceAllow", "a(ss)", [("/dev/char/1:3", "rw")])
