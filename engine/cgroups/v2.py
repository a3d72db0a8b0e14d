"""cgroup v2 (the unified hierarchy): one directory per container, v1-shaped resources converted to v2 files.

| linux.resources                  | v2 file                                                                    |
|----------------------------------|----------------------------------------------------------------------------|
| memory.limit / reservation       | memory.max / memory.low (-1 -> "max")                                      |
| memory.swap (memory+swap)        | memory.swap.max = swap - limit (convert.swap_v2)                           |
| cpu.shares                       | cpu.weight (convert.shares_to_weight)                                      |
| cpu.quota / period / burst       | cpu.max "<quota|max> <period>" / cpu.max.burst                             |
| cpu.idle, cpus, mems             | cpu.idle, cpuset.cpus, cpuset.mems                                         |
| pids.limit                       | pids.max                                                                   |
| blockIO.weight / weightDevice    | io.bfq.weight (as is) if present, else io.weight (convert)                 |
| blockIO.throttle*Device          | io.max "maj:min rbps=|wbps=|riops=|wiops=<rate>" (rate 0 -> "max")         |
| hugepageLimits                   | hugetlb.<size>.max and hugetlb.<size>.rsvd.max                             |
| rdma                             | rdma.max "<dev> hca_handle=N hca_object=M"                                 |
| unified                          | written verbatim, one write(2) per line, after everything else             |
| devices                          | an eBPF BPF_CGROUP_DEVICE program (ebpf.py), attached with ALLOW_MULTI      |

No v2 equivalent, so an error (config-linux.md, Unified: "If the conversion is not possible the runtime MUST
generate an error"): memory.swappiness, memory.disableOOMKiller true, memory.useHierarchy false,
cpu.realtimeRuntime/realtimePeriod, blockIO leaf weights, network (net_cls/net_prio). memory.kernel and
kernelTCP are ignored with a warning everywhere, as runc does (the kernel dropped kmem limits).

Controllers: on create every controller the parent offers is enabled in cgroup.subtree_control of each ancestor
(runc's fs2 does the same: `engine update` may set a limit later, and stats need the accounting). Helpers used
for the hybrid host's unified hierarchy enable only the controllers a setting needs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterable, Mapping

from engine.cgroups import convert, fs
from engine.cgroups.common import RESOURCES, UNIFIED, Manager, load_common, number, section
from engine.cgroups.fs import CgroupError, fail, jpath

TYPE_CHECKING = False  # typing and the device emulator (dataclasses) cost ~20 ms; `engine delete` loads us
if TYPE_CHECKING:
    from typing import Any

    from engine.cgroups.devices import Emulator


def container_rules(*args: Any) -> Emulator:
    from engine.cgroups.devices import container_rules as rules  # only create and update need the emulator

    return rules(*args)


FREEZE_TIMEOUT = 10.0


# ----- helpers shared with the hybrid (v1 + unified) manager -------------------------------------------------


def ancestors(mount: str, leaf: str) -> list[str]:
    """The cgroups from the mount point down to leaf's parent (where subtree_control decides what leaf gets)."""
    mount = mount.rstrip("/")
    out = [mount]
    rel = os.path.relpath(os.path.dirname(leaf), mount)
    if rel != ".":
        for part in rel.split("/"):
            out.append(os.path.join(out[-1], part))
    return out


def enable_controllers(mount: str, leaf: str, wanted: Iterable[str] | None, where: str) -> None:
    """Enable controllers for leaf: in every ancestor's cgroup.subtree_control, top down.

    wanted=None: every controller each ancestor offers, failures ignored (runc's behaviour; a setting that needs
    one then fails with a clear message). Otherwise each wanted controller must be available and enabled.
    """
    for directory in ancestors(mount, leaf):
        available = (fs.read_or(directory, "cgroup.controllers") or "").split()
        enabled = (fs.read_or(directory, "cgroup.subtree_control") or "").split()
        names = available if wanted is None else list(wanted)
        missing = [c for c in names if c not in enabled]
        if not missing:
            continue
        if wanted is not None:
            for c in missing:
                if c not in available:
                    raise fail(
                        where,
                        f"the {c} controller is not available in {directory} "
                        f"(cgroup.controllers: {' '.join(available) or 'none'})",
                    )
        try:
            fs.write(where, directory, "cgroup.subtree_control", " ".join("+" + c for c in missing))
        except fs.WriteError:
            for c in missing:  # one at a time: one refusal (e.g. a threaded subtree) must not block the others
                try:
                    fs.write(where, directory, "cgroup.subtree_control", "+" + c)
                except fs.WriteError as err:
                    if wanted is not None:
                        raise
                    del err


def write_v2(where: str, directory: str, name: str, value: str) -> None:
    """A v2 write whose ENOENT says which controller is missing instead of just "No such file"."""
    try:
        fs.write(where, directory, name, value)
    except fs.WriteError as err:
        if err.errno == errno.ENOENT:
            ctrl = name.split(".", 1)[0]
            have = (fs.read_or(directory, "cgroup.controllers") or "").split()
            if ctrl != "cgroup" and ctrl not in have:
                raise fail(
                    where,
                    f"the {ctrl} controller is not enabled for {directory} "
                    f"(its cgroup.controllers: {' '.join(have) or 'none'})",
                ) from None
        raise


def set_hugetlb_v2(directory: str, mount: str, limits: list[Mapping[str, Any]], where: str, enable: bool) -> None:
    if enable:
        enable_controllers(mount, directory, ["hugetlb"], jpath(where, "hugepageLimits"))
    for i, size, limit in hugepage_limits(limits, where):
        w = jpath(where, "hugepageLimits", i, "limit")
        write_v2(w, directory, f"hugetlb.{size}.max", str(limit))
        # Reservation accounting (hugetlb.<size>.rsvd.*, Linux 5.7+) is what the spec prefers; the kernel may
        # lack it, then the fault-time limit above is all there is.
        if fs.exists(directory, f"hugetlb.{size}.rsvd.max"):
            fs.write(w, directory, f"hugetlb.{size}.rsvd.max", str(limit))


def hugepage_limits(limits: list[Mapping[str, Any]], where: str) -> list[tuple[int, str, int]]:
    sizes = convert.hugepage_sizes()
    out = []
    for i, entry in enumerate(limits):
        size = entry.get("pageSize")
        if size not in sizes:
            raise fail(
                jpath(where, "hugepageLimits", i, "pageSize"),
                f"{size!r} is not a huge page size of this kernel (it has: {', '.join(sizes) or 'none'})",
            )
        limit = number(entry, "limit", jpath(where, "hugepageLimits", i))
        if limit is None or limit < 0:
            raise fail(jpath(where, "hugepageLimits", i, "limit"), "required, a byte count")
        out.append((i, size, limit))
    return out


def set_unified(directory: str, mount: str, unified: Mapping[str, Any], where: str) -> None:
    """linux.resources.unified: each key is a file of the container's cgroup, written verbatim; the controller
    it belongs to is enabled first, and one that does not exist is an error naming the key."""
    offered = set((fs.read_or(mount, "cgroup.controllers") or "").split())
    for key, value in unified.items():
        w = jpath(where, "unified", key)
        if not key or "/" in key or key in (".", ".."):
            raise fail(w, "must be a file name of the cgroup (no slashes)")
        if not isinstance(value, str):
            raise fail(w, f"expected a string, got {value!r}")
        ctrl = key.split(".", 1)[0]
        if "." not in key:
            raise fail(w, "must be a cgroup file name of the form CONTROLLER.PARAMETER")
        if ctrl in offered:
            enable_controllers(mount, directory, [ctrl], w)
        elif ctrl != "cgroup" and not fs.exists(directory, key):
            raise fail(
                w,
                f"the {ctrl} controller is not available in the cgroup2 hierarchy at {mount} "
                f"(it offers: {' '.join(sorted(offered)) or 'none'})",
            )
        # Multi-line values (io.max for several devices) are one entry per write(2), as the kernel parses them.
        lines = [ln for ln in value.split("\n") if ln] if "\n" in value else [value]
        for line in lines:
            write_v2(w, directory, key, line)


def set_rdma(directory: str, rdma: Mapping[str, Any], where: str) -> None:
    for device, limits in rdma.items():
        w = jpath(where, "rdma", device)
        if not isinstance(limits, Mapping):
            raise fail(w, f"expected an object, got {limits!r}")
        handles, objects = number(limits, "hcaHandles", w), number(limits, "hcaObjects", w)
        if handles is None and objects is None:
            raise fail(w, "needs hcaHandles or hcaObjects (or both)")
        parts = [device]
        if handles is not None:
            parts.append(f"hca_handle={handles}")
        if objects is not None:
            parts.append(f"hca_object={objects}")
        write_v2(w, directory, "rdma.max", " ".join(parts))


def device_node(dev: Mapping[str, Any], where: str) -> str:
    """The "major:minor" of a blockIO device entry (both REQUIRED)."""
    numbers = []
    for key in ("major", "minor"):
        value = number(dev, key, where)
        if value is None or value < 0:
            raise fail(jpath(where, key), "required, a device number")
        numbers.append(str(value))
    return ":".join(numbers)


def check_memory_value(mem: Mapping[str, Any], key: str, where: str) -> int | None:
    """limit/swap/reservation: -1 is unlimited, 0 leaves the value alone (runc treats 0 as unset), else bytes."""
    value = number(mem, key, where)
    if value is not None and value < -1:
        raise fail(jpath(where, key), f"{value} is neither -1 (unlimited) nor a byte count")
    return None if value == 0 else value


def warn_kernel_memory(mgr: Manager, mem: Mapping[str, Any], where: str) -> None:
    for key in ("kernel", "kernelTCP"):
        if mem.get(key) is not None:
            mgr.warn(
                f"{jpath(where, key)}: ignored: kernel memory limits are deprecated and gone from current kernels "
                "(runc ignores them too)"
            )


def refuse_unconvertible(res: Mapping[str, Any], where: str) -> None:
    """v1 settings with no v2 equivalent. config-linux.md, Unified: "If the conversion is not possible the
    runtime MUST generate an error" (runc ignores most of these on v2). Values that ask for v2's only behaviour
    (disableOOMKiller false, useHierarchy true, 0 for the "0 is unset" fields) pass."""
    if section(res, "network", where):
        raise fail(
            jpath(where, "network"),
            "cgroup v2 has no net_cls/net_prio controllers; tag traffic with eBPF or nftables instead",
        )
    w = jpath(where, "memory")
    mem = section(res, "memory", where)
    if mem.get("swappiness") is not None:
        raise fail(jpath(w, "swappiness"), "cgroup v2 has no per-cgroup swappiness (only the global vm.swappiness)")
    if mem.get("disableOOMKiller") is True:
        raise fail(jpath(w, "disableOOMKiller"), "cgroup v2 cannot disable the OOM killer for a cgroup")
    if mem.get("useHierarchy") is False:
        raise fail(jpath(w, "useHierarchy"), "cgroup v2 accounting is always hierarchical")
    w = jpath(where, "cpu")
    cpu = section(res, "cpu", where)
    for key in ("realtimeRuntime", "realtimePeriod"):
        if number(cpu, key, w):
            raise fail(jpath(w, key), "cgroup v2 has no real-time CPU bandwidth control")
    w = jpath(where, "blockIO")
    bio = section(res, "blockIO", where)
    if number(bio, "leafWeight", w):
        raise fail(jpath(w, "leafWeight"), "cgroup v2 has no leaf weights (a CFQ feature)")
    for i, dev in enumerate(bio.get("weightDevice") or ()):
        if number(dev, "leafWeight", jpath(w, "weightDevice", i)):
            raise fail(jpath(w, "weightDevice", i, "leafWeight"), "cgroup v2 has no leaf weights (a CFQ feature)")


def freeze_v2(directory: str) -> None:
    """cgroup.freeze 1, then wait until cgroup.events says "frozen 1" (every task stopped); thaw on timeout."""
    fs.write("freeze", directory, "cgroup.freeze", "1")
    deadline = time.monotonic() + FREEZE_TIMEOUT
    delay = 0.001
    while True:
        events = fs.read_or(directory, "cgroup.events") or ""
        if "frozen 1" in events.splitlines():
            return
        if time.monotonic() >= deadline:
            with contextlib.suppress(CgroupError):
                fs.write("freeze", directory, "cgroup.freeze", "0")
            raise CgroupError(
                f"freeze: {directory} did not report frozen within {FREEZE_TIMEOUT:.0f}s; thawed it again"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


# ----- the manager ---------------------------------------------------------------------------------------------


class V2Manager(Manager):
    mode = "v2"

    def __init__(self, *args: Any, bpf_programs: list[int] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.bpf_programs: list[int] = list(bpf_programs or [])

    @property
    def dir(self) -> str:
        return self.dirs[UNIFIED]

    @property
    def mount(self) -> str:
        return self.mounts[UNIFIED]

    def create(
        self,
        resources: Mapping[str, Any] | None = None,
        *,
        linux_devices: Iterable[Mapping[str, Any]] | None = None,
        json_root: str = RESOURCES,
        **kw: Any,
    ) -> None:
        res = resources or {}
        # device_rules="if given": no device program unless resources has "devices" (a rootless engine, which may
        # not load one: engine/rootless/cgroups.py).
        wanted = kw.get("device_rules", "always") == "always" or "devices" in res
        devices = container_rules(res, json_root, linux_devices) if wanted else None  # rule errors before any mkdir
        refuse_unconvertible(res, json_root)
        try:
            made = self._make_dir(self.mount, self.dir)
            enable_controllers(self.mount, self.dir, None, "linux.cgroupsPath")
            if not made:
                self._check_reusable(UNIFIED, self.dir)
                if fs.read_or(self.dir, "cgroup.freeze", "0").strip() == "1":
                    raise fail("linux.cgroupsPath", f"{self.dir} is frozen; a new container needs a thawed cgroup")
            self._apply(res, json_root, devices)
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
        # Devices only when the update names them (runc's `update` never does): the program stays otherwise.
        devices = container_rules(resources, json_root, linux_devices) if "devices" in resources else None
        self._apply(resources, json_root, devices)

    def _apply(self, res: Mapping[str, Any], where: str, devices: Emulator | None) -> None:
        d = self.dir
        refuse_unconvertible(res, where)  # before any write, so that a refused update changes nothing
        self._pids(d, section(res, "pids", where), jpath(where, "pids"))
        self._memory(d, section(res, "memory", where), jpath(where, "memory"))
        self._io(d, section(res, "blockIO", where), jpath(where, "blockIO"))
        self._cpu(d, section(res, "cpu", where), jpath(where, "cpu"))
        if devices is not None:
            self._devices(d, devices, jpath(where, "devices"))
        if res.get("hugepageLimits"):
            set_hugetlb_v2(d, self.mount, res["hugepageLimits"], where, enable=True)
        if res.get("rdma"):
            enable_controllers(self.mount, d, ["rdma"], jpath(where, "rdma"))
            set_rdma(d, res["rdma"], where)
        if res.get("unified"):
            set_unified(d, self.mount, res["unified"], where)

    def _pids(self, d: str, pids: Mapping[str, Any], w: str) -> None:
        limit = number(pids, "limit", w)
        if limit is not None:
            # config-linux.md: 0 is a valid limit ("SHOULD be treated as such"); -1 (any negative) is "max".
            write_v2(jpath(w, "limit"), d, "pids.max", "max" if limit < 0 else str(limit))

    def _memory(self, d: str, mem: Mapping[str, Any], w: str) -> None:
        warn_kernel_memory(self, mem, w)
        limit = check_memory_value(mem, "limit", w)
        swap = check_memory_value(mem, "swap", w)
        reservation = check_memory_value(mem, "reservation", w)
        try:
            swap_max = convert.swap_v2(swap, limit)
        except ValueError as err:
            raise fail(jpath(w, "swap"), str(err)) from None
        if mem.get("checkBeforeUpdate") and ((limit or 0) > 0 or (swap or 0) > 0):
            self._check_usage(d, limit, swap, w)
        if swap_max is not None:
            value = convert.v2_bytes(swap_max)
            if fs.exists(d, "memory.swap.max") or value not in ("max", "0"):
                # Without swap accounting, "unlimited" and "no swap" are what the kernel does anyway (runc too).
                write_v2(jpath(w, "swap"), d, "memory.swap.max", value)
        if limit is not None:
            write_v2(jpath(w, "limit"), d, "memory.max", convert.v2_bytes(limit))
        if reservation is not None:
            write_v2(jpath(w, "reservation"), d, "memory.low", convert.v2_bytes(reservation))

    @staticmethod
    def _check_usage(d: str, limit: int | None, swap: int | None, w: str) -> None:
        """memory.checkBeforeUpdate: refuse a limit at or below the current usage (v1's behaviour) instead of
        letting the v2 kernel OOM-kill the container."""
        try:
            usage = int(fs.read(d, "memory.current"))
        except (OSError, ValueError):
            return  # best effort, like runc: nothing to compare with
        if limit is not None and limit > 0 and limit <= usage:
            raise fail(jpath(w, "limit"), f"{limit} is not above the current usage {usage} (checkBeforeUpdate)")
        swap_usage = int(fs.read_or(d, "memory.swap.current", "0") or 0)
        if swap is not None and swap > 0 and swap <= usage + swap_usage:
            raise fail(
                jpath(w, "swap"),
                f"{swap} is not above the current memory+swap usage {usage + swap_usage} (checkBeforeUpdate)",
            )

    def _cpu(self, d: str, cpu: Mapping[str, Any], w: str) -> None:
        shares = number(cpu, "shares", w)
        if shares:
            write_v2(jpath(w, "shares"), d, "cpu.weight", str(convert.shares_to_weight(shares)))
        idle = number(cpu, "idle", w)
        if idle is not None:
            write_v2(jpath(w, "idle"), d, "cpu.idle", str(idle))
        quota, period, burst = number(cpu, "quota", w), number(cpu, "period", w), number(cpu, "burst", w)
        quota, period = quota or None, period or None  # 0 is unset, as in runc
        if burst is not None and quota is not None and quota > 0 and burst > quota:
            raise fail(jpath(w, "burst"), f"{burst} is larger than quota {quota}")
        retry_burst = False
        if burst is not None:
            try:
                write_v2(jpath(w, "burst"), d, "cpu.max.burst", str(burst))
            except fs.WriteError as err:
                # A burst above the current quota is refused (EINVAL); if the quota is changing too, retry after.
                if err.errno != errno.EINVAL or quota is None:
                    raise
                retry_burst = True
        if quota is not None or period is not None:
            # Keep the half of cpu.max that the config leaves out (runc would reset the quota to "max").
            current = (fs.read_or(d, "cpu.max") or "max 100000").split()
            q = current[0] if quota is None else ("max" if quota < 0 else str(quota))
            p = current[1] if period is None and len(current) > 1 else str(period or 100000)
            write_v2(jpath(w, "quota" if quota is not None else "period"), d, "cpu.max", f"{q} {p}")
        if retry_burst:
            write_v2(jpath(w, "burst"), d, "cpu.max.burst", str(burst))
        for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
            value = cpu.get(key)
            if value:
                write_v2(jpath(w, key), d, name, str(value))

    def _io(self, d: str, bio: Mapping[str, Any], w: str) -> None:
        bfq = fs.exists(d, "io.bfq.weight")
        weight = number(bio, "weight", w)
        if weight:
            if bfq:
                write_v2(jpath(w, "weight"), d, "io.bfq.weight", str(weight))
            else:
                write_v2(jpath(w, "weight"), d, "io.weight", str(convert.blkio_weight_to_io_weight(weight)))
        for i, dev in enumerate(bio.get("weightDevice") or ()):
            wd = jpath(w, "weightDevice", i)
            value = number(dev, "weight", wd)
            if value:
                node = device_node(dev, wd)
                if bfq:
                    write_v2(jpath(wd, "weight"), d, "io.bfq.weight", f"{node} {value}")
                else:
                    write_v2(jpath(wd, "weight"), d, "io.weight", f"{node} {convert.blkio_weight_to_io_weight(value)}")
        for key, knob in (
            ("throttleReadBpsDevice", "rbps"),
            ("throttleWriteBpsDevice", "wbps"),
            ("throttleReadIOPSDevice", "riops"),
            ("throttleWriteIOPSDevice", "wiops"),
        ):
            for i, dev in enumerate(bio.get(key) or ()):
                wd = jpath(w, key, i)
                rate = number(dev, "rate", wd)
                # v1 removes a throttle rule with rate 0; the v2 spelling of "no limit" is "max".
                value = "max" if not rate else str(rate)
                write_v2(wd, d, "io.max", f"{device_node(dev, wd)} {knob}={value}")

    def _devices(self, d: str, emu: Emulator, w: str) -> None:
        from engine.cgroups.ebpf import device_program
        from engine.linux import bpf  # ctypes: only when a device program is loaded

        program = device_program(emu)
        try:
            cgroup_fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise fail(w, f"opening {d}: {fs.os_reason(err)}") from None
        try:
            old = bpf.prog_query(cgroup_fd)
            prog_fd = bpf.prog_load_cgroup_device(program)
            try:
                bpf.prog_attach(prog_fd, cgroup_fd)
                new_id = bpf.prog_id(prog_fd)
            finally:
                os.close(prog_fd)
            # Then drop the programs this replaces (an update, or a cgroup reused): the new one is in force
            # before the old ones go, so there is no window without a device policy.
            for prog_id in old:
                self._detach(bpf, cgroup_fd, prog_id)
            self.bpf_programs = [new_id]
        except OSError as err:
            raise fail(w, f"installing the eBPF device program on {d}: {err.strerror or err}") from None
        finally:
            os.close(cgroup_fd)

    @staticmethod
    def _detach(bpf: Any, cgroup_fd: int, prog_id: int) -> None:
        try:
            prog_fd = bpf.prog_fd_by_id(prog_id)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.EPERM, errno.EACCES):
                return  # gone already, or hidden from us by an LSM (runc skips those too)
            raise
        try:
            bpf.prog_detach(prog_fd, cgroup_fd)
        except OSError as err:
            if err.errno != errno.ENOENT:
                raise
        finally:
            os.close(prog_fd)

    def _release_foreign(self, directory: str) -> None:
        # We joined a cgroup we did not create: take our device program off it again.
        if not self.bpf_programs:
            return
        from engine.linux import bpf

        with contextlib.suppress(OSError):
            cgroup_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                for prog_id in self.bpf_programs:
                    with contextlib.suppress(OSError):
                        self._detach(bpf, cgroup_fd, prog_id)
            finally:
                os.close(cgroup_fd)
        self.bpf_programs = []

    def freeze(self) -> None:
        freeze_v2(self.dir)

    def thaw(self) -> None:
        fs.write("thaw", self.dir, "cgroup.freeze", "0")

    def is_frozen(self) -> bool:
        return (fs.read_or(self.dir, "cgroup.freeze", "0") or "0").strip() == "1"

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["bpfPrograms"] = list(self.bpf_programs)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], **kw: Any) -> V2Manager:
        return cls(**load_common(data), bpf_programs=list(data.get("bpfPrograms") or []), **kw)
