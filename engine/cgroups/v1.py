"""cgroup v1 (and hybrid) hosts: one directory per hierarchy, each controller's files written as runc's fs driver
writes them.

| linux.resources                  | v1 file                                                                     |
|----------------------------------|-----------------------------------------------------------------------------|
| memory.limit                     | memory.limit_in_bytes (EBUSY explained with the current and peak usage)     |
| memory.swap                      | memory.memsw.limit_in_bytes (memory+swap; ordered against limit as runc)    |
| memory.reservation               | memory.soft_limit_in_bytes                                                  |
| memory.swappiness                | memory.swappiness (0-100)                                                   |
| memory.disableOOMKiller          | memory.oom_control                                                          |
| memory.useHierarchy              | memory.use_hierarchy (current kernels refuse 0: an error, not a silence)    |
| memory.kernel / kernelTCP        | ignored with a warning (as runc: kmem limits are deprecated and gone)       |
| cpu.shares                       | cpu.shares (read back: the kernel clamps to 2..262144)                      |
| cpu.quota / period / burst       | cpu.cfs_quota_us / cpu.cfs_period_us / cpu.cfs_burst_us (EINVAL ordering)   |
| cpu.realtimeRuntime / Period     | cpu.rt_runtime_us / cpu.rt_period_us                                        |
| cpu.idle                         | cpu.idle                                                                    |
| cpu.cpus / mems                  | cpuset.cpus / cpuset.mems (empty ones copied from the parent, every level)  |
| pids.limit                       | pids.max                                                                    |
| blockIO.weight / leafWeight      | blkio.weight (blkio.bfq.weight without CFQ) / blkio.leaf_weight             |
| blockIO.weightDevice             | blkio.weight_device (bfq) / blkio.leaf_weight_device, "maj:min weight"      |
| blockIO.throttle*Device          | blkio.throttle.{read,write}_{bps,iops}_device, "maj:min rate"               |
| hugepageLimits                   | hugetlb.<size>.limit_in_bytes (+ .rsvd.), or v2 files in the unified cgroup |
| network.classID / priorities     | net_cls.classid / net_prio.ifpriomap (error if not mounted)                 |
| rdma                             | rdma.max (error without an rdma controller)                                 |
| unified                          | hybrid only: the unified cgroup's files (controller must be in cgroup2)     |
| devices                          | devices.deny / devices.allow transitions from devices.list, then verified   |

On a hybrid host the container also gets a cgroup in the cgroup2 ("unified") hierarchy, as runc's systemd driver
and crun do: it carries hugetlb here (v2 owns it on this kind of host), `unified` settings, freezing when v1 has
no freezer, and tracking (procs() sees processes there too). If that mkdir is refused (read-only cgroup2 mount)
and no setting needs it, the container simply has no unified cgroup.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable, Iterable, Mapping

from engine.cgroups import fs
from engine.cgroups.common import RESOURCES, UNIFIED, Manager, load_common, number, section
from engine.cgroups.fs import CgroupError, fail, jpath
from engine.cgroups.v2 import (
    check_memory_value,
    container_rules,
    device_node,
    freeze_v2,
    hugepage_limits,
    set_hugetlb_v2,
    set_rdma,
    set_unified,
    warn_kernel_memory,
)

TYPE_CHECKING = False  # typing costs ~8 ms at import; annotations here are strings
if TYPE_CHECKING:
    from typing import Any

    from engine.cgroups.devices import Emulator

FREEZE_TIMEOUT = 10.0


class V1Manager(Manager):
    mode = "v1"

    def dir_for(self, controller: str) -> str | None:
        for name, directory in self.dirs.items():
            if name != UNIFIED and controller in name.split(","):
                return directory
        return None

    def _need(self, controller: str, where: str) -> str:
        directory = self.dir_for(controller)
        if directory is None:
            raise fail(where, f"the {controller} cgroup controller is not mounted on this host")
        return directory

    @property
    def unified_dir(self) -> str | None:
        return self.dirs.get(UNIFIED)

    # ----- create / update -------------------------------------------------------------------------------------

    def create(
        self,
        resources: Mapping[str, Any] | None = None,
        *,
        linux_devices: Iterable[Mapping[str, Any]] | None = None,
        json_root: str = RESOURCES,
        **kw: Any,
    ) -> None:
        res = resources or {}
        devices = self._device_policy(res, json_root, linux_devices, explicit=False)
        self._preflight(res, json_root)  # refusals before anything is made
        try:
            for name, directory in list(self.dirs.items()):
                on_level = self._cpuset_levels(directory) if "cpuset" in name.split(",") else None
                try:
                    made = self._make_dir(self.mounts[name], directory, on_level)
                except CgroupError:
                    if name == UNIFIED and not self._needs_unified(res):
                        # A read-only or foreign cgroup2 mount: nothing here needs it, so go without.
                        del self.dirs[name]
                        self.warn(
                            f"no cgroup in the cgroup2 hierarchy at {self.mounts[name]} (not writable); "
                            "continuing without it"
                        )
                        continue
                    raise
                if not made:
                    self._check_reusable(name, directory)
            if self.is_frozen_any():
                raise fail(
                    "linux.cgroupsPath", "the container's cgroup is frozen; a new container needs a thawed cgroup"
                )
            self._apply(res, json_root, devices, creating=True)
        except BaseException:
            self._undo_create()
            raise

    def update(
        self,
        resources: Mapping[str, Any],
        *,
        linux_devices: Iterable[Mapping[str, Any]] | None = None,
        json_root: str = RESOURCES,
        **kw: Any,
    ) -> None:
        devices = (
            self._device_policy(resources, json_root, linux_devices, explicit=True) if "devices" in resources else None
        )
        self._apply(resources, json_root, devices, creating=False)

    def _device_policy(
        self, res: Mapping[str, Any], where: str, linux_devices: Iterable[Mapping[str, Any]] | None, explicit: bool
    ) -> Emulator | None:
        emu = container_rules(res, where, linux_devices)  # rule errors first, whatever the host
        if self.dir_for("devices") is None:
            if res.get("devices") or explicit:
                raise fail(jpath(where, "devices"), "the devices cgroup controller is not mounted on this host")
            self.warn("the devices cgroup controller is not mounted: the container's device access is not restricted")
            return None
        return emu

    @staticmethod
    def _needs_unified(res: Mapping[str, Any]) -> bool:
        return bool(res.get("unified") or res.get("hugepageLimits"))

    def _apply(self, res: Mapping[str, Any], where: str, devices: Emulator | None, creating: bool) -> None:
        self._preflight(res, where)  # the checks that need no write, so that a refused update changes nothing
        cpu = section(res, "cpu", where)
        self._cpuset(cpu, jpath(where, "cpu"), creating)
        if devices is not None:
            self._devices(devices, jpath(where, "devices"))
        self._memory(section(res, "memory", where), jpath(where, "memory"))
        self._cpu(cpu, jpath(where, "cpu"))
        self._pids(section(res, "pids", where), jpath(where, "pids"))
        self._blkio(section(res, "blockIO", where), jpath(where, "blockIO"))
        if res.get("hugepageLimits"):
            self._hugetlb(res["hugepageLimits"], where)
        self._network(section(res, "network", where), jpath(where, "network"))
        if res.get("rdma"):
            set_rdma(self._need("rdma", jpath(where, "rdma")), res["rdma"], where)
        if res.get("unified"):
            if self.unified_dir is None:
                raise fail(
                    jpath(where, "unified"),
                    "this host has no cgroup2 (unified) hierarchy mounted; unified settings need one",
                )
            set_unified(self.unified_dir, self.mounts[UNIFIED], res["unified"], where)

    def _preflight(self, res: Mapping[str, Any], where: str) -> None:
        mem, w = section(res, "memory", where), jpath(where, "memory")
        limit, swap = check_memory_value(mem, "limit", w), check_memory_value(mem, "swap", w)
        check_memory_value(mem, "reservation", w)
        if limit is not None and swap is not None and limit > 0 and 0 < swap < limit:
            raise fail(jpath(w, "swap"), f"{swap} is below memory.limit {limit} (swap is the memory+swap total)")
        swappiness = number(mem, "swappiness", w)
        if swappiness is not None and not 0 <= swappiness <= 100:
            raise fail(jpath(w, "swappiness"), f"{swappiness} is outside 0-100")
        cpu, w = section(res, "cpu", where), jpath(where, "cpu")
        quota, burst = number(cpu, "quota", w), number(cpu, "burst", w)
        if burst is not None and quota is not None and quota > 0 and burst > quota:
            raise fail(jpath(w, "burst"), f"{burst} is larger than quota {quota}")
        needs = [
            ("cpuset", jpath(w, "cpus"), cpu.get("cpus") or cpu.get("mems")),
            ("pids", jpath(where, "pids", "limit"), section(res, "pids", where).get("limit") is not None),
            ("net_cls", jpath(where, "network", "classID"), section(res, "network", where).get("classID") is not None),
            ("net_prio", jpath(where, "network", "priorities"), section(res, "network", where).get("priorities")),
            ("rdma", jpath(where, "rdma"), res.get("rdma")),
        ]
        for controller, path, wanted in needs:
            if wanted:
                self._need(controller, path)
        if res.get("hugepageLimits"):
            hugepage_limits(res["hugepageLimits"], where)
        if res.get("unified") and self.unified_dir is None:
            raise fail(
                jpath(where, "unified"),
                "this host has no cgroup2 (unified) hierarchy mounted; unified settings need one",
            )

    # ----- controllers -----------------------------------------------------------------------------------------

    @staticmethod
    def _cpuset_levels(leaf: str) -> Callable[[str, str, bool], None]:
        # The kernel refuses tasks in a cpuset whose cpus or mems is empty, and a new v1 cpuset starts empty:
        # copy them from the parent at every level (runc's cpusetEnsureParent). The leaf gets the config's values
        # first, in _cpuset, and only then the parent's for what is still empty (an exclusive sibling would
        # otherwise make the copy fail).
        def level(directory: str, parent: str, made: bool) -> None:
            if directory != leaf:
                copy_cpuset_if_empty(directory, parent)

        return level

    def _cpuset(self, cpu: Mapping[str, Any], w: str, creating: bool) -> None:
        d = self.dir_for("cpuset")
        if d is None:
            if cpu.get("cpus") or cpu.get("mems"):
                raise fail(
                    jpath(w, "cpus" if cpu.get("cpus") else "mems"),
                    "the cpuset cgroup controller is not mounted on this host",
                )
            return
        for key in ("cpus", "mems"):
            if cpu.get(key):
                fs.write(jpath(w, key), d, f"cpuset.{key}", str(cpu[key]))
        if creating:
            copy_cpuset_if_empty(d, os.path.dirname(d))

    def _devices(self, target: Emulator, w: str) -> None:
        d = self._need("devices", w)
        from engine.cgroups.devices import Emulator

        current = Emulator.from_list(fs.read(d, "devices.list"))
        for rule in current.transition(target):
            fs.write(w, d, "devices.allow" if rule.allow else "devices.deny", rule.line())
        # The kernel ignores some requests silently (e.g. a deny that matches no exception); check the outcome.
        after = Emulator.from_list(fs.read(d, "devices.list"))
        if after.default_allow != target.default_allow or (not target.default_allow and after != target):
            raise fail(w, f"{d}/devices.list ended up as {after}, not the requested {target}")

    def _memory(self, mem: Mapping[str, Any], w: str) -> None:
        if not mem:
            return
        warn_kernel_memory(self, mem, w)
        limit = check_memory_value(mem, "limit", w)
        swap = check_memory_value(mem, "swap", w)
        reservation = check_memory_value(mem, "reservation", w)
        swappiness = number(mem, "swappiness", w)
        settings = [limit, swap, reservation, swappiness, mem.get("disableOOMKiller"), mem.get("useHierarchy")]
        if all(v is None for v in settings):
            return
        d = self._need("memory", w)
        if limit is not None and swap is not None and limit > 0 and 0 < swap < limit:
            raise fail(jpath(w, "swap"), f"{swap} is below memory.limit {limit} (swap is the memory+swap total)")
        has_memsw = fs.exists(d, "memory.memsw.limit_in_bytes")
        if limit == -1 and swap is None and has_memsw:
            swap = -1  # unlimited memory with no swap given: unlimited swap too (runc)
        if swap is not None and not has_memsw:
            if swap != -1:
                raise fail(
                    jpath(w, "swap"), f"this kernel has no swap accounting ({d}/memory.memsw.limit_in_bytes is missing)"
                )
            swap = None
        # memsw must stay >= limit at every step: raise the swap first when growing, the limit first when shrinking.
        if limit is not None and swap is not None:
            current = int(fs.read(d, "memory.limit_in_bytes"))
            if swap == -1 or current < swap:
                self._write_swap(d, swap, w)
                self._write_limit(d, limit, w)
            else:
                self._write_limit(d, limit, w)
                self._write_swap(d, swap, w)
        elif limit is not None:
            self._write_limit(d, limit, w)
        elif swap is not None:
            self._write_swap(d, swap, w)
        if reservation is not None:
            fs.write(jpath(w, "reservation"), d, "memory.soft_limit_in_bytes", str(reservation))
        if swappiness is not None:
            if not 0 <= swappiness <= 100:
                raise fail(jpath(w, "swappiness"), f"{swappiness} is outside 0-100")
            fs.write(jpath(w, "swappiness"), d, "memory.swappiness", str(swappiness))
        if mem.get("disableOOMKiller") is not None:
            fs.write(jpath(w, "disableOOMKiller"), d, "memory.oom_control", "1" if mem["disableOOMKiller"] else "0")
        if mem.get("useHierarchy") is not None:
            try:
                fs.write(jpath(w, "useHierarchy"), d, "memory.use_hierarchy", "1" if mem["useHierarchy"] else "0")
            except fs.WriteError as err:
                if mem["useHierarchy"] is False and err.errno == errno.EINVAL:
                    raise err.with_detail("this kernel only does hierarchical accounting") from None
                raise

    @staticmethod
    def _write_limit(d: str, limit: int, w: str) -> None:
        try:
            fs.write(jpath(w, "limit"), d, "memory.limit_in_bytes", str(limit))
        except fs.WriteError as err:
            if err.errno != errno.EBUSY:
                raise
            usage = fs.read_or(d, "memory.usage_in_bytes", "?") or "?"
            peak = fs.read_or(d, "memory.max_usage_in_bytes", "?") or "?"
            raise err.with_detail(f"below the current usage {usage.strip()}, peak {peak.strip()}") from None

    @staticmethod
    def _write_swap(d: str, swap: int, w: str) -> None:
        fs.write(jpath(w, "swap"), d, "memory.memsw.limit_in_bytes", str(swap))

    def _cpu(self, cpu: Mapping[str, Any], w: str) -> None:
        shares, quota, period = number(cpu, "shares", w), number(cpu, "quota", w), number(cpu, "period", w)
        burst, idle = number(cpu, "burst", w), number(cpu, "idle", w)
        rt_runtime, rt_period = number(cpu, "realtimeRuntime", w), number(cpu, "realtimePeriod", w)
        quota, period, rt_runtime, rt_period = quota or None, period or None, rt_runtime or None, rt_period or None
        if all(v is None for v in (shares or None, quota, period, burst, idle, rt_runtime, rt_period)):
            return
        d = self._need("cpu", w)
        if shares:
            fs.write(jpath(w, "shares"), d, "cpu.shares", str(shares))
            # The kernel clamps out-of-range shares silently; say so instead (runc reads it back too).
            actual = int(fs.read(d, "cpu.shares"))
            if actual != shares:
                bound = "maximum" if shares > actual else "minimum"
                raise fail(jpath(w, "shares"), f"{shares} is out of range: the kernel's {bound} is {actual}")
        if burst is not None and quota is not None and quota > 0 and burst > quota:
            raise fail(jpath(w, "burst"), f"{burst} is larger than quota {quota}")
        # The period, burst and quota constrain each other; a write the kernel refuses with EINVAL before the
        # quota changes is retried after it (runc's order).
        retry: list[tuple[str, str, str]] = []
        for value, key, name in ((period, "period", "cpu.cfs_period_us"), (burst, "burst", "cpu.cfs_burst_us")):
            if value is None:
                continue
            try:
                fs.write(jpath(w, key), d, name, str(value))
            except fs.WriteError as err:
                if err.errno != errno.EINVAL or quota is None:
                    raise
                retry.append((jpath(w, key), name, str(value)))
        if quota is not None:
            fs.write(jpath(w, "quota"), d, "cpu.cfs_quota_us", str(quota))
        for where, name, value in retry:
            fs.write(where, d, name, value)
        if idle is not None:
            fs.write(jpath(w, "idle"), d, "cpu.idle", str(idle))
        self._rt(d, rt_runtime, rt_period, w)

    @staticmethod
    def _rt(d: str, runtime: int | None, period: int | None, w: str) -> None:
        pending = None
        if period is not None:
            try:
                fs.write(jpath(w, "realtimePeriod"), d, "cpu.rt_period_us", str(period))
            except fs.WriteError as err:
                # runtime must fit in the period: a shorter period may need the new runtime written first.
                if err.errno != errno.EINVAL or runtime is None:
                    raise
                pending = str(period)
        if runtime is not None:
            fs.write(jpath(w, "realtimeRuntime"), d, "cpu.rt_runtime_us", str(runtime))
        if pending is not None:
            fs.write(jpath(w, "realtimePeriod"), d, "cpu.rt_period_us", pending)

    def _pids(self, pids: Mapping[str, Any], w: str) -> None:
        limit = number(pids, "limit", w)
        if limit is None:
            return
        d = self._need("pids", jpath(w, "limit"))
        # config-linux.md: 0 is a valid limit ("SHOULD be treated as such"); -1 (any negative) is "max".
        fs.write(jpath(w, "limit"), d, "pids.max", "max" if limit < 0 else str(limit))

    def _blkio(self, bio: Mapping[str, Any], w: str) -> None:
        if not any(bio.get(k) for k in bio):
            return
        d = self._need("blkio", w)
        # Without CFQ (gone since Linux 5.0) the proportional weights are BFQ's files.
        cfq = fs.exists(d, "blkio.weight")
        weight_file = "blkio.weight" if cfq else "blkio.bfq.weight"
        weight_device_file = "blkio.weight_device" if cfq else "blkio.bfq.weight_device"
        weight, leaf = number(bio, "weight", w), number(bio, "leafWeight", w)
        if weight:
            fs.write(jpath(w, "weight"), d, weight_file, str(weight))
        if leaf:
            fs.write(jpath(w, "leafWeight"), d, "blkio.leaf_weight", str(leaf))
        for i, dev in enumerate(bio.get("weightDevice") or ()):
            wd = jpath(w, "weightDevice", i)
            node = device_node(dev, wd)
            value, leaf_value = number(dev, "weight", wd), number(dev, "leafWeight", wd)
            if value is None and leaf_value is None:
                raise fail(wd, "needs weight or leafWeight (or both)")
            if value:
                fs.write(jpath(wd, "weight"), d, weight_device_file, f"{node} {value}")
            if leaf_value:
                fs.write(jpath(wd, "leafWeight"), d, "blkio.leaf_weight_device", f"{node} {leaf_value}")
        for key, name in (
            ("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
            ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
            ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
            ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"),
        ):
            for i, dev in enumerate(bio.get(key) or ()):
                wd = jpath(w, key, i)
                rate = number(dev, "rate", wd)
                if rate is None or rate < 0:
                    raise fail(jpath(wd, "rate"), "required, a rate")
                fs.write(wd, d, name, f"{device_node(dev, wd)} {rate}")

    def _hugetlb(self, limits: list[Mapping[str, Any]], where: str) -> None:
        d = self.dir_for("hugetlb")
        if d is not None:
            for i, size, limit in hugepage_limits(limits, where):
                w = jpath(where, "hugepageLimits", i, "limit")
                fs.write(w, d, f"hugetlb.{size}.limit_in_bytes", str(limit))
                if fs.exists(d, f"hugetlb.{size}.rsvd.limit_in_bytes"):
                    fs.write(w, d, f"hugetlb.{size}.rsvd.limit_in_bytes", str(limit))
            return
        unified = self.unified_dir
        offered = (fs.read_or(self.mounts.get(UNIFIED, ""), "cgroup.controllers") or "").split() if unified else []
        if unified is None or "hugetlb" not in offered:
            raise fail(
                jpath(where, "hugepageLimits"),
                "this host has no hugetlb cgroup controller (not in cgroup v1 nor cgroup2)",
            )
        set_hugetlb_v2(unified, self.mounts[UNIFIED], limits, where, enable=True)

    def _network(self, net: Mapping[str, Any], w: str) -> None:
        class_id = number(net, "classID", w)
        if class_id is not None:
            d = self._need("net_cls", jpath(w, "classID"))
            fs.write(jpath(w, "classID"), d, "net_cls.classid", str(class_id))
        priorities = net.get("priorities") or []
        if priorities:
            d = self._need("net_prio", jpath(w, "priorities"))
            for i, entry in enumerate(priorities):
                wp = jpath(w, "priorities", i)
                name, prio = entry.get("name"), number(entry, "priority", wp)
                if not name or prio is None:
                    raise fail(wp, "needs name and priority")
                fs.write(wp, d, "net_prio.ifpriomap", f"{name} {prio}")

    # ----- freezer -----------------------------------------------------------------------------------------------

    def freeze(self) -> None:
        d = self.dir_for("freezer")
        if d is None:
            if self.unified_dir is None:
                raise CgroupError("freeze: this host has neither a v1 freezer nor a cgroup2 hierarchy")
            freeze_v2(self.unified_dir)
            return
        try:
            freeze_v1(d)
        except CgroupError:
            with contextlib.suppress(CgroupError):
                fs.write("freeze", d, "freezer.state", "THAWED")  # never leave it half frozen (runc #2774)
            raise

    def thaw(self) -> None:
        d = self.dir_for("freezer")
        if d is None:
            if self.unified_dir is None:
                raise CgroupError("thaw: this host has neither a v1 freezer nor a cgroup2 hierarchy")
            fs.write("thaw", self.unified_dir, "cgroup.freeze", "0")
            return
        fs.write("thaw", d, "freezer.state", "THAWED")

    def is_frozen(self) -> bool:
        """Paused by us: FROZEN through this cgroup's own freezer.state, not just because an ancestor froze."""
        d = self.dir_for("freezer")
        if d is None:
            return (
                self.unified_dir is not None
                and (fs.read_or(self.unified_dir, "cgroup.freeze", "0") or "").strip() == "1"
            )
        state = _stable_state(d)
        return state == "FROZEN" and (fs.read_or(d, "freezer.self_freezing", "1") or "1").strip() == "1"

    def is_frozen_any(self) -> bool:
        d = self.dir_for("freezer")
        return d is not None and _stable_state(d) == "FROZEN"

    @classmethod
    def from_json(cls, data: Mapping[str, Any], **kw: Any) -> V1Manager:
        mgr = cls(**load_common(data), **kw)
        mgr.mode = data.get("mode", "v1")
        return mgr


def _stable_state(d: str) -> str:
    deadline = time.monotonic() + 1.0
    while True:
        state = (fs.read_or(d, "freezer.state", "THAWED") or "THAWED").strip()
        if state != "FREEZING" or time.monotonic() >= deadline:
            return state
        time.sleep(0.001)


def freeze_v1(d: str) -> None:
    """Write FROZEN until freezer.state reads FROZEN. v1 can stay FREEZING while tasks keep forking or joining;
    like runc, keep rewriting FROZEN, and now and then thaw briefly to let a racing fork finish."""
    deadline = time.monotonic() + FREEZE_TIMEOUT
    attempt = 0
    while True:
        if attempt % 50 == 49:
            fs.write("freeze", d, "freezer.state", "THAWED")
            time.sleep(0.01)
        fs.write("freeze", d, "freezer.state", "FROZEN")
        state = (fs.read_or(d, "freezer.state", "") or "").strip()
        if state == "FROZEN":
            return
        if state != "FREEZING":
            raise CgroupError(f"freeze: unexpected {d}/freezer.state {state!r}")
        if time.monotonic() >= deadline:
            raise CgroupError(f"freeze: {d} stayed FREEZING for {FREEZE_TIMEOUT:.0f}s")
        attempt += 1
        time.sleep(0.001 if attempt < 10 else 0.01)


def copy_cpuset_if_empty(directory: str, parent: str) -> None:
    for key in ("cpus", "mems"):
        name = f"cpuset.{key}"
        if not (fs.read_or(directory, name) or "").strip():
            value = (fs.read_or(parent, name) or "").strip()
            if value:
                fs.write(f"linux.resources.cpu.{key}", directory, name, value)
