"""The systemd cgroup driver's pure parts: which unit a cgroupsPath names, and linux.resources as unit properties.

cgroupsPath with --systemd-cgroup is runc's "slice:prefix:name" (what podman, containerd and CRI-O pass):

- exactly three fields separated by ":" (runc refuses anything else, and so do we);
- an empty slice is "system.slice" (runc's default for root); an unset cgroupsPath is
  "system.slice:engine:<container id>" (runc uses the prefix "runc", crun "crun");
- the unit is the scope "<prefix>-<name>.scope" (an empty prefix gives "-<name>.scope", exactly as runc);
- a name ending in ".slice" asks runc for a transient slice (kubelet's use of libcontainer, with no process in
  it): a container cannot live in a slice, so that is refused;
- a slice's cgroup is its dash-separated ancestry: "a-b-c.slice" is /a.slice/a-b.slice/a-b-c.slice, "-.slice"
  is the root; empty components ("a--b.slice", "-a.slice"), "/" and a bare ".slice" are refused (runc's
  ExpandSlice). systemd creates missing parent slices itself when the scope names one (runc relies on that too).

Properties are (name, D-Bus signature, value) triples, ready for StartTransientUnit / SetUnitProperties. Which
resources become which property (runc's choice, plus IOWeight, see docs/cgroups.md): everything systemd has a
property for is given to it, so that systemd's own rewrites of the cgroup files (a daemon-reload, a sibling
unit's change) keep the container's values; the cgroup files are written afterwards as with cgroupfs.
"""

from __future__ import annotations

from collections import namedtuple

from engine.cgroups import convert
from engine.cgroups.fs import CGROUPS_PATH, CgroupError, fail, jpath

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, Literal

    from engine.cgroups.devices import Emulator
    from engine.spec.typed import Resources

DEFAULT_SLICE = "system.slice"
DEFAULT_PREFIX = "engine"
INFINITY = 2**64 - 1  # systemd's CGROUP_LIMIT_MAX / USEC_INFINITY on the bus
DEFAULT_CPU_PERIOD = 100_000  # µs, the kernel's default for both v1 and v2
UNIT_NAME_MAX = 255
# systemd's unit name alphabet (unit-name.c VALID_CHARS); "@" only separates a template from its instance.
_UNIT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\")

# Minimum systemd versions for some properties (runc checks the same ones).
CPU_QUOTA_PERIOD_VERSION = 242
ALLOWED_CPUS_VERSION = 244
CPU_IDLE_VERSION = 252

if TYPE_CHECKING:
    Property = tuple[str, str, Any]  # (name, signature, value)
else:
    Property = tuple

# What makes the unit a container's scope at all: never dropped for an old systemd (see SystemdManager).
ESSENTIAL = frozenset({"Description", "Slice", "Delegate", "PIDs", "DefaultDependencies"})


class Unit(namedtuple("Unit", "slice name")):
    """slice: the parent slice unit ("system.slice"); name: the scope unit ("libpod-abc.scope")."""

    __slots__ = ()
    slice: str
    name: str

    @property
    def cgroup(self) -> str:
        """The unit's cgroup below the hierarchy root: "/system.slice/libpod-abc.scope"."""
        parent = expand_slice(self.slice)
        return ("" if parent == "/" else parent) + "/" + self.name


def parse_cgroups_path(cgroups_path: str | None, container_id: str) -> Unit:
    """The scope unit for linux.cgroupsPath under --systemd-cgroup; CgroupError naming the field if invalid."""
    if not cgroups_path:
        slice_name, prefix, name = DEFAULT_SLICE, DEFAULT_PREFIX, container_id
    else:
        parts = cgroups_path.split(":")
        if len(parts) != 3:
            raise fail(
                CGROUPS_PATH,
                f'{cgroups_path!r} is not "slice:prefix:name", the form --systemd-cgroup needs '
                '(e.g. "system.slice:engine:c1"; drop --systemd-cgroup to use a cgroupfs path)',
            )
        slice_name, prefix, name = parts
        slice_name = slice_name or DEFAULT_SLICE
    if not name:
        raise fail(CGROUPS_PATH, f"{cgroups_path!r} has an empty name")
    if name.endswith(".slice"):
        raise fail(
            CGROUPS_PATH,
            f"{cgroups_path!r} names a slice ({name}); a container's processes need a scope: "
            'give a name without ".slice"',
        )
    expand_slice(slice_name)  # refuses a malformed slice
    unit = f"{prefix}-{name}.scope"
    _check_unit_name(unit, cgroups_path or f"(unset, for container {container_id!r})")
    return Unit(slice_name, unit)


def expand_slice(slice_name: str) -> str:
    """ "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" -> "/"."""
    suffix = ".slice"
    stem = slice_name[: -len(suffix)] if slice_name.endswith(suffix) else ""
    if not stem or "/" in slice_name:
        raise fail(CGROUPS_PATH, f"{slice_name!r} is not a slice unit name (like system.slice or machine-x.slice)")
    _check_unit_name(slice_name, slice_name)
    if stem == "-":
        return "/"
    path, prefix = "", ""
    for component in stem.split("-"):
        if not component:
            raise fail(
                CGROUPS_PATH,
                f"{slice_name!r}: an empty component between dashes (each dash makes a parent slice)",
            )
        path += f"/{prefix}{component}{suffix}"
        prefix += component + "-"
    return path


def _check_unit_name(unit: str, shown: str) -> None:
    bad = sorted(set(unit) - _UNIT_CHARS)
    if bad:
        raise fail(CGROUPS_PATH, f"{shown!r}: {''.join(bad)!r} cannot appear in a systemd unit name ({unit})")
    if len(unit) > UNIT_NAME_MAX:
        raise fail(CGROUPS_PATH, f"{shown!r}: the unit name {unit[:40]}... is longer than {UNIT_NAME_MAX} characters")


# ----- resources -> unit properties ---------------------------------------------------------------------------


def base_properties(unit: Unit, description: str, pid: int, v2: bool) -> list[Property]:
    """What every container scope gets (runc's list): its slice, the first process, delegation (the container
    may make cgroups below its own), accounting for every controller, no default dependencies (a scope must not
    be ordered after shutdown.target's users; runc sets it too)."""
    accounting = ("MemoryAccounting", "CPUAccounting", "IOAccounting" if v2 else "BlockIOAccounting")
    return [
        ("Description", "s", description),
        ("Slice", "s", unit.slice),
        ("Delegate", "b", True),
        ("PIDs", "au", [pid]),
        *((name, "b", True) for name in (*accounting, "TasksAccounting")),
        ("DefaultDependencies", "b", False),
    ]


def resource_properties(
    resources: Resources | None,
    *,
    v2: bool,
    version: int,
    where: str = "linux.resources",
    current_cpu_max: tuple[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[Property]:
    """linux.resources as unit properties. current_cpu_max: ("quota"|"max", "period") now in force, for an update
    that gives only one half of the CPU bandwidth (the cgroupfs managers keep the other half, and systemd must
    agree with what ends up in the file)."""
    from engine.cgroups.values import number, section

    res = resources or {}
    props: list[Property] = []
    mem, w_mem = section(res, "memory", where), jpath(where, "memory")
    limit, reservation, swap = (_memory_value(mem, key, w_mem) for key in ("limit", "reservation", "swap"))
    if v2:
        if limit is not None:
            props.append(("MemoryMax", "t", _bytes(limit)))
        if reservation is not None:
            props.append(("MemoryLow", "t", _bytes(reservation)))
        try:
            swap_max = convert.swap_v2(swap, limit)
        except ValueError as err:
            raise fail(jpath(w_mem, "swap"), str(err)) from None
        if swap_max is not None:
            props.append(("MemorySwapMax", "t", _bytes(swap_max)))
    elif limit is not None:
        props.append(("MemoryLimit", "t", _bytes(limit)))

    cpu, w_cpu = section(res, "cpu", where), jpath(where, "cpu")
    shares = number(cpu, "shares", w_cpu)
    idle = number(cpu, "idle", w_cpu)
    if v2 and idle == 1 and version >= CPU_IDLE_VERSION:
        props.append(("CPUWeight", "t", 0))  # systemd's spelling of cpu.idle=1 (CPUWeight=idle)
        if shares:
            _warn(warn, f"{jpath(w_cpu, 'shares')}: systemd cannot have both a weight and cpu.idle; the unit gets idle")
    elif shares:
        props.append(("CPUWeight", "t", convert.shares_to_weight(shares)) if v2 else ("CPUShares", "t", shares))
    quota, period = number(cpu, "quota", w_cpu) or None, number(cpu, "period", w_cpu) or None  # 0 is unset
    props += cpu_quota_properties(quota, period, version, current_cpu_max)
    if version >= ALLOWED_CPUS_VERSION:
        cpusets: tuple[tuple[Literal["cpus", "mems"], str], ...] = (
            ("cpus", "AllowedCPUs"),
            ("mems", "AllowedMemoryNodes"),
        )
        for key, name in cpusets:
            if cpu.get(key):
                props.append((name, "ay", cpu_set_bits(str(cpu[key]), jpath(w_cpu, key))))

    pids_limit = number(section(res, "pids", where), "limit", jpath(where, "pids"))
    if pids_limit is not None and pids_limit != 0:
        # 0 (no new process at all) has no TasksMax spelling; the file gets it, as with cgroupfs.
        props.append(("TasksMax", "t", INFINITY if pids_limit < 0 else pids_limit))

    weight = number(section(res, "blockIO", where), "weight", jpath(where, "blockIO"))
    if weight:
        props.append(
            ("IOWeight", "t", convert.blkio_weight_to_io_weight(weight)) if v2 else ("BlockIOWeight", "t", weight)
        )

    if v2 and res.get("unified"):
        props += unified_properties(res["unified"], version, jpath(where, "unified"))
    return props


def start_only_properties(resources: Resources | None, where: str = "linux.resources") -> list[Property]:
    """Properties a unit takes only when it starts: memory.oom.group as OOMPolicy (runc's mapping)."""
    unified = (resources or {}).get("unified") or {}
    value = str(unified.get("memory.oom.group", "")).strip()
    if value in ("0", "1"):
        return [("OOMPolicy", "s", "kill" if value == "1" else "continue")]
    return []


def _memory_value(mem: Mapping[str, Any], key: str, where: str) -> int | None:
    from engine.cgroups.values import number

    value = number(mem, key, where)
    if value is not None and value < -1:
        raise fail(jpath(where, key), f"{value} is neither -1 (unlimited) nor a byte count")
    return None if value == 0 else value  # 0 is unset (runc)


def _bytes(value: int) -> int:
    return INFINITY if value == -1 else value


def _warn(warn: Callable[[str], None] | None, message: str) -> None:
    if warn is not None:
        warn(message)


def cpu_quota_properties(
    quota: int | None, period: int | None, version: int, current: tuple[str, str] | None = None
) -> list[Property]:
    """CPUQuotaPerSecUSec (+ CPUQuotaPeriodUSec) for the cpu.max / cfs_quota_us the cgroupfs managers write.

    A half not given is the one in force (current) or the kernel's default, as the managers do. The per-second
    quota is rounded up to 10 ms: systemd keeps CPUQuota= as whole percents in the unit it saves, so a value
    between two percents would come back lower after a daemon-reload (runc rounds the same way)."""
    if quota is None and period is None:
        return []
    cur_quota, cur_period = current or ("max", str(DEFAULT_CPU_PERIOD))
    if period is None:
        period = int(cur_period) if cur_period.isdigit() else DEFAULT_CPU_PERIOD
    if quota is None:
        quota = int(cur_quota) if cur_quota.isdigit() else -1
    props: list[Property] = []
    if version >= CPU_QUOTA_PERIOD_VERSION:
        props.append(("CPUQuotaPeriodUSec", "t", period))
    per_sec = INFINITY
    if quota > 0:
        per_sec = quota * 1_000_000 // period
        if per_sec % 10_000:
            per_sec = (per_sec // 10_000 + 1) * 10_000
    props.append(("CPUQuotaPerSecUSec", "t", per_sec))
    return props


def cpu_set_bits(text: str, where: str) -> bytes:
    """ "0-2,4" -> the bitmask systemd's AllowedCPUs/AllowedMemoryNodes take: byte i holds CPUs 8i..8i+7, lowest
    bit first."""
    mask = 0
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high) if dash else int(low)
        except ValueError:
            raise fail(where, f"{text!r} is not a list of numbers and ranges (like 0-2,4)") from None
        if first < 0 or last < first or last > 8191:
            raise fail(where, f"{text!r}: {part!r} is not a valid range")
        for n in range(first, last + 1):
            mask |= 1 << n
    if not mask:
        raise fail(where, f"{text!r} names no CPU or memory node")
    return mask.to_bytes((mask.bit_length() + 7) // 8, "little")


def unified_properties(unified: Mapping[str, str], version: int, where: str) -> list[Property]:
    """The unified keys systemd has properties for (runc's table); the others are only written to the files."""
    props: list[Property] = []
    for key, raw in unified.items():
        value, w = str(raw).strip(), jpath(where, key)
        if key in ("memory.high", "memory.low", "memory.min", "memory.max", "memory.swap.max"):
            name = {"memory.swap.max": "MemorySwapMax"}.get(key) or "Memory" + key.split(".")[1].capitalize()
            props.append((name, "t", _max_or_number(value, w)))
        elif key == "pids.max":
            props.append(("TasksMax", "t", _max_or_number(value, w)))
        elif key == "cpu.weight":
            if str(unified.get("cpu.idle", "")).strip() == "1" and version >= CPU_IDLE_VERSION:
                continue  # idle wins, as below
            props.append(("CPUWeight", "t", _max_or_number(value, w, allow_max=False)))
        elif key == "cpu.idle":
            if value == "1" and version >= CPU_IDLE_VERSION:
                props.append(("CPUWeight", "t", 0))
        elif key == "cpu.max":
            fields = value.split()
            if not 1 <= len(fields) <= 2 or not (fields[0] == "max" or fields[0].isdigit()):
                raise fail(w, f'{value!r} is not "<quota|max> [period]"')
            if len(fields) == 2 and not fields[1].isdigit():
                raise fail(w, f"{value!r}: the period {fields[1]!r} is not a number")
            quota = -1 if fields[0] == "max" else int(fields[0])
            period = int(fields[1]) if len(fields) == 2 else DEFAULT_CPU_PERIOD
            props += cpu_quota_properties(quota, period, version)
        elif key in ("cpuset.cpus", "cpuset.mems") and version >= ALLOWED_CPUS_VERSION:
            name = "AllowedCPUs" if key == "cpuset.cpus" else "AllowedMemoryNodes"
            props.append((name, "ay", cpu_set_bits(value, w)))
    return props


def _max_or_number(value: str, where: str, allow_max: bool = True) -> int:
    if value == "max" and allow_max:
        return INFINITY
    if not value.isdigit():
        raise fail(where, f"{value!r} is not {'a number or max' if allow_max else 'a number'}")
    return int(value)


# ----- devices ---------------------------------------------------------------------------------------------------


def device_properties(emu: Emulator, v2: bool, warn: Callable[[str], None] | None = None) -> list[Property]:
    """DevicePolicy + DeviceAllow for the container's device policy (the normal form of engine.cgroups.devices).

    systemd only has allow lists on top of deny-all ("strict"). What it cannot say:
    - allow-all with deny exceptions, or an exception with any major and a fixed minor ("c *:5"):
      on cgroup v2 systemd is told to impose nothing (DevicePolicy=auto, no list) and our own eBPF program, which
      the cgroupfs manager attaches beside systemd's, enforces the whole policy; on v1 systemd gets deny-all plus
      what it can express (runc's choice: if systemd rewrites devices.list later, the container loses access
      rather than gaining it), and the v1 files are then written exactly as with cgroupfs.
    The list is emptied first (an empty DeviceAllow resets it), then filled.
    """
    if emu.default_allow and not emu.exceptions:
        return [("DevicePolicy", "s", "auto"), ("DeviceAllow", "a(ss)", [])]
    entries: list[tuple[str, str]] = []
    inexpressible = emu.default_allow
    if not emu.default_allow:
        for (dev_type, major, minor), access in emu.sorted():
            kind = "char" if dev_type == "c" else "block"
            if major is None and minor is not None:
                inexpressible = True
                continue
            if major is None:
                entries.append((f"{kind}-*", access))
            elif minor is None:
                entries.append((f"{kind}-{major}", access))
            else:
                entries.append((f"/dev/{kind}/{major}:{minor}", access))
    if inexpressible and v2:
        return [("DevicePolicy", "s", "auto"), ("DeviceAllow", "a(ss)", [])]
    if inexpressible:
        _warn(warn, "systemd cannot express every device rule; it gets deny-all plus the rules it can express")
    return [("DevicePolicy", "s", "strict"), ("DeviceAllow", "a(ss)", []), ("DeviceAllow", "a(ss)", entries)]


def check_systemd_version(version: int) -> None:
    if version and version < 218:
        raise CgroupError(f"--systemd-cgroup: systemd {version} is too old (scopes need Delegate=, systemd 218)")
