"""The container's cgroups: create them, apply linux.resources, put processes in, freeze, update, remove.

    from engine.cgroups import manager_for, load_manager
    mgr = manager_for(config["linux"].get("cgroupsPath"), container_id, warn=log.warning)
    mgr.create(config["linux"].get("resources"), linux_devices=config["linux"].get("devices"))
    mgr.add(pid)                       # every hierarchy
    record.cgroups = mgr.to_json()     # later processes: load_manager(record.cgroups)
    mgr.procs(); mgr.freeze(); mgr.thaw(); mgr.is_frozen(); mgr.update(resources); mgr.destroy()

Layout (v1 / hybrid / v2) and cgroupsPath rules: layout.py. v1 and hybrid hosts: v1.py. cgroup v2: v2.py.
The systemd driver (--systemd-cgroup, a transient scope over D-Bus around those): systemd.py.
Device rules: devices.py (emulation), ebpf.py (the v2 program), engine/linux/bpf.py (the syscall).
docs/cgroups.md has the field-by-field mapping. Importing this package costs only stdlib modules; the managers
are imported when first asked for.
"""

from __future__ import annotations

from engine.cgroups.fs import CgroupError

TYPE_CHECKING = False  # `import typing` costs ~8 ms, and `engine delete` loads this package
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from engine.cgroups.common import Manager
    from engine.cgroups.layout import Layout

__all__ = ["CgroupError", "Manager", "load_manager", "manager_for"]


def manager_for(
    cgroups_path: str | None,
    container_id: str,
    *,
    warn: Callable[[str], None] | None = None,
    layout: Layout | None = None,
    systemd: bool = False,
) -> Manager:
    """The manager for a container's cgroup(s), not created yet (create() does that).

    cgroups_path: linux.cgroupsPath; None or "" means engine/<container_id> (relative). layout: the host's hierarchies,
    detected from /proc/self/mountinfo when not given (tests pass one to aim at a particular mount).
    systemd: the --systemd-cgroup driver (cgroups_path is then "slice:prefix:name", see systemd.py).
    """
    from engine.cgroups import layout as layout_mod
    from engine.cgroups.common import UNIFIED

    host = layout or layout_mod.detect()
    if systemd:
        from engine.cgroups.systemd import SystemdManager

        return SystemdManager.for_container(cgroups_path, container_id, host, warn=warn)  # type: ignore[return-value]
    path = layout_mod.clean_cgroups_path(cgroups_path, container_id)
    if host.mode == "v2":
        from engine.cgroups.v2 import V2Manager

        assert host.unified is not None
        directory = layout_mod.directory_in(host.unified, path)
        return V2Manager(path, {UNIFIED: directory}, {UNIFIED: host.unified.mount_point}, warn=warn)

    from engine.cgroups.v1 import V1Manager

    dirs = {h.name: layout_mod.directory_in(h, path) for h in host.v1}
    mounts = {h.name: h.mount_point for h in host.v1}
    if host.unified is not None:
        dirs[UNIFIED] = layout_mod.directory_in(host.unified, path)
        mounts[UNIFIED] = host.unified.mount_point
    mgr = V1Manager(path, dirs, mounts, warn=warn)
    mgr.mode = host.mode
    return mgr


def load_manager(data: Mapping[str, Any], *, warn: Callable[[str], None] | None = None) -> Manager:
    """The manager a previous process saved with to_json() (state.json), for delete, kill, pause, exec, update."""
    mode = data.get("mode")
    if mode == "systemd":
        from engine.cgroups.systemd import SystemdManager

        return SystemdManager.from_json(data, warn=warn)  # type: ignore[return-value]
    if mode == "v2":
        from engine.cgroups.v2 import V2Manager

        return V2Manager.from_json(data, warn=warn)
    if mode in ("v1", "hybrid"):
        from engine.cgroups.v1 import V1Manager

        return V1Manager.from_json(data, warn=warn)
    raise CgroupError(f"cgroup state: unknown mode {mode!r}")
