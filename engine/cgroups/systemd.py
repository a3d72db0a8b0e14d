"""The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is a transient scope unit.

    create(resources)  checks the cgroupsPath ("slice:prefix:name", systemd_units.py), that systemd answers on
                       D-Bus, and turns the resources into unit properties (errors before anything exists);
    add(pid), first    StartTransientUnit("<prefix>-<name>.scope", "replace", Slice=, Delegate=yes,
                       PIDs=[pid], the accounting switches and the resources as properties), waits for its job
                       (JobRemoved, bounded); on a v1/hybrid host makes the cgroups systemd does not manage
                       (cpuset, freezer, ...) at the same place, as runc does; then writes every cgroup file with
                       the cgroupfs manager of the host's layout, the device program or devices.list included:
                       systemd's values and the files agree, and the settings systemd has no property for
                       (hugetlb, rdma, io.max, cpu.max.burst, unified keys) are in force too;
    add(pid), later    (exec) writes the pid to cgroup.procs, as cgroupfs;
    update(resources)  SetUnitProperties (runtime), then the files;
    freeze/thaw, procs the cgroup files (runc uses the freezer files too, not systemd's FreezeUnit);
    destroy()          StopUnit and its job, ResetFailedUnit, then removes whatever is left of the unit's
                       cgroups (sub-cgroups the container made, v1 hierarchies systemd does not manage).

Only create, delete and update talk to systemd, so only they import the D-Bus library (jeepney); kill --all, ps,
pause, resume and exec read and write cgroup files like the cgroupfs driver. The record in state.json says
"mode": "systemd", so later commands need not be given --systemd-cgroup (runc's users pass it every time;
it is accepted and changes nothing after create).
"""

from __future__ import annotations

import contextlib

from engine.cgroups import systemd_units as units
from engine.cgroups.fs import CgroupError, fail
from engine.cgroups.manager import RESOURCES, STATE_VERSION, UNIFIED

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    from engine.cgroups.layout import Layout
    from engine.cgroups.manager import Manager
    from engine.cgroups.systemd_dbus import Connection
    from engine.cgroups.systemd_units import Property
    from engine.spec.typed import Device, Resources


def _dbus() -> Any:
    from engine.cgroups import systemd_dbus  # jeepney: only the commands that talk to systemd pay for it

    return systemd_dbus


class SystemdManager:
    driver = "systemd"

    def __init__(
        self,
        unit: units.Unit,
        inner: Manager,
        description: str,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.unit = unit
        self.inner = inner  # the cgroupfs manager of the unit's cgroups: V2Manager, or V1Manager (v1, hybrid)
        self.description = description
        self._warn = warn
        self._pending: tuple[Resources, Iterable[Device] | None, list[Property]] | None = None

    # ----- construction -----------------------------------------------------------------------------------------

    @classmethod
    def for_container(
        cls,
        cgroups_path: str | None,
        container_id: str,
        host: Layout,
        warn: Callable[[str], None] | None = None,
    ) -> SystemdManager:
        unit = units.parse_cgroups_path(cgroups_path, container_id)
        inner = _inner_manager(host, unit, warn)
        return cls(unit, inner, f"engine container {container_id}", warn)

    def __getattr__(self, name: str) -> Any:
        # Whatever the driver does not change (joining, listing, signalling, freezing...) is the cgroupfs
        # manager's, on the unit's directories.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def mode(self) -> str:
        return self.inner.mode  # the host's layout: "v2", "hybrid" or "v1"

    @property
    def v2(self) -> bool:
        return self.inner.mode == "v2"

    @property
    def paths(self) -> dict[str, str]:
        return self.inner.paths

    @property
    def warnings(self) -> list[str]:
        return self.inner.warnings

    def warn(self, message: str) -> None:
        self.inner.warn(message)

    # ----- create ---------------------------------------------------------------------------------------------

    def create(
        self,
        resources: Resources | None = None,
        *,
        linux_devices: Iterable[Device] | None = None,
        json_root: str = RESOURCES,
        **kw: Any,
    ) -> None:
        """Check everything that can be checked before the container's first process exists; the unit itself
        is started by the first add(pid) (a scope cannot exist without a process)."""
        from engine.cgroups.devices import container_rules

        res = (resources or {}).copy()
        # Every check the cgroupfs manager makes before writing (device rules, values, controllers this host
        # lacks), before systemd is asked anything.
        self.inner._plan(res, json_root, linux_devices, device_rules="always")
        devices = container_rules(res, json_root, linux_devices)
        with _dbus().connect() as bus:
            version = bus.version()
            units.check_systemd_version(version)
            props = units.resource_properties(res, v2=self.v2, version=version, where=json_root, warn=self.warn)
            props += units.start_only_properties(res, json_root)
            props += units.device_properties(devices, self.v2, warn=self.warn)
            path = bus.get_unit(self.unit.name)
            if path is not None and _active(bus, path):
                raise fail(
                    "linux.cgroupsPath",
                    f"the systemd unit {self.unit.name} already exists and is active (another container's?)",
                )
        self._pending = (res, linux_devices, props)

    def add(self, pid: int) -> None:
        if self._pending is None:
            self.inner.add(pid)  # a process joining a running container (exec): cgroup.procs, as cgroupfs
            return
        res, linux_devices, props = self._pending
        self._pending = None
        self._start(pid, props)
        try:
            self._join_unmanaged(pid)
            # Every file as with cgroupfs, the device policy included, in the directories systemd made.
            self.inner.adopt(res, linux_devices=linux_devices)
        except BaseException:
            with contextlib.suppress(CgroupError):
                self.destroy()
            raise

    def _start(self, pid: int, resource_props: list[Property]) -> None:
        dbus = _dbus()
        props = units.base_properties(self.unit, self.description, pid, self.v2) + resource_props
        with dbus.connect() as bus:

            def start(props: list[Property]) -> str:
                job: str = bus.start_transient_unit(self.unit.name, "replace", props)
                return job

            try:
                try:
                    job = self._dropping_unknown(start, props)
                except dbus.SystemdError as err:
                    if err.name != dbus.UNIT_EXISTS:
                        raise
                    # A failed unit of the same name lingers until reset: reset it and try once more (runc).
                    with contextlib.suppress(dbus.SystemdError):
                        bus.reset_failed_unit(self.unit.name)
                    job = self._dropping_unknown(start, props)
            except dbus.SystemdError as err:
                raise fail("linux.cgroupsPath", f"starting the systemd unit {self.unit.name}: {err}") from None
            try:
                bus.wait_for_job(job, f"starting {self.unit.name}")
            except dbus.SystemdError as err:
                with contextlib.suppress(dbus.SystemdError):
                    bus.reset_failed_unit(self.unit.name)
                raise fail("linux.cgroupsPath", str(err)) from None

    def _dropping_unknown(self, call: Callable[[list[Property]], Any], props: list[Property]) -> Any:
        """call(props); a systemd older than a property refuses the whole call naming it ("Cannot set property X,
        or unknown property."): drop that one, warn (the cgroup file still gets the value) and call again, as
        crun does. The unit's own properties (slice, pids, delegation) are never dropped."""
        dbus = _dbus()
        for _ in range(len(props) + 1):
            try:
                return call(props)
            except dbus.SystemdError as err:
                name = dbus.unknown_property(err)
                if name is None or name in units.ESSENTIAL or not any(p[0] == name for p in props):
                    raise
                self.warn(f"systemd does not know the unit property {name}; it is set in the cgroup files only")
                props = [p for p in props if p[0] != name]
        raise AssertionError("unreachable")

    def _join_unmanaged(self, pid: int) -> None:
        """v1/hybrid: systemd made the unit's cgroup in the hierarchies it manages (name=systemd, memory, cpu,
        pids, devices, blkio; the cgroup2 mount); make it in the others at the same place and move the process
        into all of them (runc's joinCgroups). On v2 the scope is the one cgroup and systemd made it."""
        import os

        missing = {name: d for name, d in self.inner.dirs.items() if not os.path.isdir(d)}
        if self.v2:
            if missing:
                raise CgroupError(
                    f"systemd started {self.unit.name} but its cgroup {self.inner.dirs[UNIFIED]} is missing"
                )
            return
        if missing:
            from engine.cgroups.v1 import V1Manager

            mounts = {name: self.inner.mounts[name] for name in missing}
            extra = V1Manager(self.inner.cgroups_path, missing, mounts)  # quiet: its warnings are not ours
            extra.mode = self.inner.mode
            extra.create(None, device_rules="if given")  # mkdir, cpuset's cpus/mems copied from the parents
            # destroy removes the parents made here too (e.g. <freezer>/system.slice), while they are empty.
            self.inner.created = list(dict.fromkeys([*self.inner.created, *extra.created]))
        self.inner.add(pid)

    # ----- later commands -----------------------------------------------------------------------------------------

    def update(
        self,
        resources: Resources,
        *,
        linux_devices: Iterable[Device] | None = None,
        json_root: str = RESOURCES,
        **kw: Any,
    ) -> None:
        # Everything the cgroupfs manager would refuse is refused before systemd changes anything.
        self.inner._plan(resources, json_root, linux_devices, device_rules="if given")
        emu = None
        if "devices" in resources:
            from engine.cgroups.devices import container_rules

            emu = container_rules(resources, json_root, linux_devices)
        with _dbus().connect() as bus:
            version = bus.version()
            props = units.resource_properties(
                resources, v2=self.v2, version=version, where=json_root, current_cpu_max=self._cpu_max(), warn=self.warn
            )
            if emu is not None:
                props += units.device_properties(emu, self.v2, warn=self.warn)
            if props:
                self._set_properties(bus, props, devices="devices" in resources)
        self.inner.update(resources, linux_devices=linux_devices, json_root=json_root)

    def _set_properties(self, bus: Connection, props: list[Property], devices: bool) -> None:
        dbus = _dbus()
        # v1: systemd rewrites devices.list from scratch (deny all, then its list); freeze the container
        # meanwhile so that it never sees a spurious EPERM (runc does the same).
        freeze = devices and not self.v2 and not self.inner.is_frozen()
        if freeze:
            self.inner.freeze()
        try:
            self._dropping_unknown(lambda p: bus.set_unit_properties(self.unit.name, p), props)
        except dbus.SystemdError as err:
            raise CgroupError(f"update: {self.unit.name}: {err}") from None
        finally:
            if freeze:
                self.inner.thaw()

    def _cpu_max(self) -> tuple[str, str] | None:
        """The CPU bandwidth in force now, (quota or "max", period), from the cgroup files."""
        from engine.cgroups import fs

        if self.v2:
            fields = (fs.read_or(self.inner.dirs[UNIFIED], "cpu.max") or "").split()
            return (fields[0], fields[1]) if len(fields) == 2 else None
        from engine.cgroups.v1 import V1Manager

        assert isinstance(self.inner, V1Manager)  # not v2: v1 or hybrid (_inner_manager)
        d = self.inner.dir_for("cpu")
        if d is None:
            return None
        quota = (fs.read_or(d, "cpu.cfs_quota_us") or "-1").strip()
        period = (fs.read_or(d, "cpu.cfs_period_us") or "").strip()
        return ("max" if quota.startswith("-") else quota, period or str(units.DEFAULT_CPU_PERIOD))

    def destroy(self) -> None:
        """Stop the unit (systemd removes its cgroups), let go of a failed one, then remove what is left: the
        cgroups the container made below its scope, the v1 hierarchies systemd does not manage."""
        dbus = _dbus()
        self._pending = None
        try:
            bus = dbus.connect()
        except dbus.NotRunning:
            bus = None  # no systemd, so no unit either: only the cgroup directories can be left
        if bus is not None:
            with bus:
                try:
                    job = bus.stop_unit(self.unit.name)
                    bus.wait_for_job(job, f"stopping {self.unit.name}")
                except dbus.SystemdError as err:
                    if err.name != dbus.NO_SUCH_UNIT and err.name not in ("canceled", "failed"):
                        raise CgroupError(f"removing the systemd unit {self.unit.name}: {err}") from None
                with contextlib.suppress(dbus.SystemdError):
                    bus.reset_failed_unit(self.unit.name)
        self.inner.destroy()

    # ----- state ------------------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "driver": self.driver,
            "mode": self.mode,
            "slice": self.unit.slice,
            "unit": self.unit.name,
            "description": self.description,
            "cgroups": self.inner.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], warn: Callable[[str], None] | None = None) -> SystemdManager:
        from engine.cgroups import load_manager

        if data.get("version") != STATE_VERSION:
            raise CgroupError(f"cgroup state: unknown version {data.get('version')!r}")
        inner = load_manager(data["cgroups"], warn=warn)
        return cls(units.Unit(data["slice"], data["unit"]), inner, data.get("description", ""), warn)


def load_manager(data: Mapping[str, Any], warn: Callable[[str], None] | None = None) -> SystemdManager:
    """The manager a previous process saved (state.json's cgroups record, "driver": "systemd")."""
    return SystemdManager.from_json(data, warn=warn)


def _active(bus: Connection, path: str) -> bool:
    state = bus.unit_property(path, "org.freedesktop.systemd1.Unit", "ActiveState")
    return state in ("active", "activating", "reloading", "deactivating")


def _inner_manager(host: Layout, unit: units.Unit, warn: Callable[[str], None] | None) -> Manager:
    """The cgroupfs manager for the unit's cgroup(s): <mount>/<slice path>/<unit> in every hierarchy. All of them
    count as made by us: after StopUnit only leftovers remain there, and destroy removes those."""
    rel = unit.cgroup
    if host.mode == "v2":
        from engine.cgroups.v2 import V2Manager

        assert host.unified is not None
        mount = host.unified.mount_point.rstrip("/")
        mgr: Manager = V2Manager(rel, {UNIFIED: mount + rel}, {UNIFIED: mount}, warn=warn)
    else:
        from engine.cgroups.v1 import V1Manager

        dirs = {h.name: h.mount_point.rstrip("/") + rel for h in host.v1}
        mounts = {h.name: h.mount_point for h in host.v1}
        if host.unified is not None:
            dirs[UNIFIED] = host.unified.mount_point.rstrip("/") + rel
            mounts[UNIFIED] = host.unified.mount_point
        mgr = V1Manager(rel, dirs, mounts, warn=warn)
        mgr.mode = host.mode
    mgr.created = list(mgr.dirs.values())
    return mgr
