"""linux.resources.cpu except cpus/mems (cpuset.py).

| field                   | cgroup v1                                          | cgroup v2                            |
|-------------------------|----------------------------------------------------|--------------------------------------|
| shares (0 unset)        | cpu.shares, read back: the kernel clamps silently  | cpu.weight (shares_to_weight)        |
| quota, period (0 unset) | cpu.cfs_quota_us, cpu.cfs_period_us (EINVAL retry) | cpu.max "quota period", other kept   |
| burst (<= quota)        | cpu.cfs_burst_us                                   | cpu.max.burst                        |
| idle                    | cpu.idle                                           | cpu.idle                             |
| realtimeRuntime/Period  | cpu.rt_runtime_us, cpu.rt_period_us (runc's order) | error: no real-time bandwidth        |

"0 is unset" follows runc, whose Go structs cannot tell an absent value from 0.
"""

from __future__ import annotations

import errno

from engine.cgroups import convert, fs
from engine.cgroups.fs import fail, jpath
from engine.cgroups.values import number

KEY = "cpu"
FIELDS: tuple[CPUNumber, ...] = ("shares", "quota", "period", "burst", "idle", "realtimeRuntime", "realtimePeriod")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    from engine.spec.typed import CPU

    CPUNumber = Literal["shares", "quota", "period", "burst", "idle", "realtimeRuntime", "realtimePeriod"]


def _values(cpu: CPU, w: str) -> dict[str, int | None]:
    values: dict[str, int | None] = {key: number(cpu, key, w) for key in FIELDS}
    for key in ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod"):
        values[key] = values[key] or None  # 0 is unset
    return values


def check(cg: Any, cpu: CPU, w: str) -> None:
    v = _values(cpu, w)
    quota, burst = v["quota"], v["burst"]
    if burst is not None and quota is not None and quota > 0 and burst > quota:
        raise fail(jpath(w, "burst"), f"{burst} is larger than quota {quota}")
    if cg.v2:
        for key in ("realtimeRuntime", "realtimePeriod"):
            if v[key]:
                raise fail(jpath(w, key), "cgroup v2 has no real-time CPU bandwidth control")
    elif any(value is not None for value in v.values()):
        cg.directory_for("cpu", w)


def apply(cg: Any, cpu: CPU, w: str) -> None:
    v = _values(cpu, w)
    if all(value is None for value in v.values()):
        return
    d = cg.directory_for("cpu", w)
    if v["shares"]:
        _shares(cg, d, v["shares"], w)
    if v["idle"] is not None:
        cg.write(jpath(w, "idle"), d, "cpu.idle", str(v["idle"]))
    if cg.v2:
        _bandwidth_v2(cg, d, v["quota"], v["period"], v["burst"], w)
        return
    _bandwidth_v1(d, v["quota"], v["period"], v["burst"], w)
    _realtime_v1(d, v["realtimeRuntime"], v["realtimePeriod"], w)


def _shares(cg: Any, d: str, shares: int, w: str) -> None:
    if cg.v2:
        cg.write(jpath(w, "shares"), d, "cpu.weight", str(convert.shares_to_weight(shares)))
        return
    fs.write(jpath(w, "shares"), d, "cpu.shares", str(shares))
    # The kernel clamps out-of-range shares silently; say so instead (runc reads it back too).
    actual = int(fs.read(d, "cpu.shares"))
    if actual != shares:
        bound = "maximum" if shares > actual else "minimum"
        raise fail(jpath(w, "shares"), f"{shares} is out of range: the kernel's {bound} is {actual}")


def _bandwidth_v1(d: str, quota: int | None, period: int | None, burst: int | None, w: str) -> None:
    first = [
        (jpath(w, key), d, name, str(value))
        for key, name, value in (("period", "cpu.cfs_period_us", period), ("burst", "cpu.cfs_burst_us", burst))
        if value is not None
    ]
    then = [(jpath(w, "quota"), d, "cpu.cfs_quota_us", str(quota))] if quota is not None else []
    _write_around(fs.write, first, then)


def _realtime_v1(d: str, runtime: int | None, period: int | None, w: str) -> None:
    first = [(jpath(w, "realtimePeriod"), d, "cpu.rt_period_us", str(period))] if period is not None else []
    then = [(jpath(w, "realtimeRuntime"), d, "cpu.rt_runtime_us", str(runtime))] if runtime is not None else []
    _write_around(fs.write, first, then)


def _write_around(write: Any, first: list[tuple[str, str, str, str]], then: list[tuple[str, str, str, str]]) -> None:
    """Write `first`, then `then`; a `first` write the kernel refuses with EINVAL (it conflicts with the current
    value of what `then` changes: a period shorter than the quota or runtime, a burst above the quota) is written
    again after `then`. runc's order for the CFS and real-time settings."""
    retry = []
    for item in first:
        try:
            write(*item)
        except fs.WriteError as err:
            if err.errno != errno.EINVAL or not then:
                raise
            retry.append(item)
    for item in then + retry:
        write(*item)


def _bandwidth_v2(cg: Any, d: str, quota: int | None, period: int | None, burst: int | None, w: str) -> None:
    first = [(jpath(w, "burst"), d, "cpu.max.burst", str(burst))] if burst is not None else []
    then = []
    if quota is not None or period is not None:
        # Keep the half of cpu.max that the config leaves out (runc would reset the quota to "max").
        current = (fs.read_or(d, "cpu.max") or "max 100000").split()
        q = current[0] if quota is None else ("max" if quota < 0 else str(quota))
        p = current[1] if period is None and len(current) > 1 else str(period or 100000)
        then.append((jpath(w, "quota" if quota is not None else "period"), d, "cpu.max", f"{q} {p}"))
    _write_around(cg.write, first, then)
