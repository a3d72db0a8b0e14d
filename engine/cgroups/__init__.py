"""The container's cgroups: create them, apply linux.resources, put processes in, freeze, signal, update, remove.

The one interface (engine/cgroups/manager.py, Manager) that create, exec, kill, delete, pause, resume and update
use, and that a systemd driver wraps:

    mgr = manager_for(cgroups_path, container_id, warn=log.warning)   # the cgroupfs driver; nothing touched yet
    mgr.create(resources, linux_devices=...)   # mkdir in every hierarchy + linux.resources; all or nothing
    mgr.adopt(resources, linux_devices=...)    # the same for directories someone else made for the container
    mgr.add(pid)                               # pid (its thread group) into every hierarchy
    mgr.join_exec(pid, ["memory:sub"], init_pid=...)   # exec: every hierarchy, or --cgroup's sub-cgroups
    mgr.procs() -> [pid]                       # the container's processes, its sub-cgroups included
    mgr.signal_all(sig)                        # kill --all / delete: cgroup.kill, or freeze + pidfds + thaw
    mgr.freeze(); mgr.thaw(); mgr.is_frozen()
    mgr.update(resources, json_root="")        # `engine update`; devices only if the document has "devices"
    mgr.destroy()                              # rmdir what create made; kills nothing
    mgr.to_json() -> dict                      # kept in state.json; load_manager(dict) in later processes
    mgr.paths -> {hierarchy: dir}; mgr.mode -> "v1" | "hybrid" | "v2"; mgr.warnings -> [str]

Every failure is a CgroupError (an EngineError) whose text is one line naming the JSON path or flag, the file and
the errno. Importing this package costs only stdlib modules; the managers are imported when first asked for, and
the controllers (controllers/, one module per controller shared by v1 and v2) only by create and update.

For a systemd driver (engine/cgroups/systemd.py: a transient scope over D-Bus, then the cgroupfs files written
as runc does):

- manager_for("/system.slice/engine-<id>.scope", id) is a cgroupfs manager for the scope's cgroup: an absolute
  path lands at <mount>/<path> in every hierarchy (v1 and hybrid), or in the one cgroup2 mount (v2).
  manager_at({hierarchy: directory}) builds one for directories given one by one (mounts from the host layout).
- Once systemd has made the scope (and put the init in it): mgr.adopt(resources, linux_devices=...) writes the
  files without making or checking directories; destroy() then leaves them (stopping the unit removes them).
- Its own state: to_json() of a manager whose `driver` is "systemd" (the systemd manager sets that class
  attribute and may nest the cgroupfs manager's to_json()); load_manager() hands such a record to
  engine.cgroups.systemd.load_manager(data, warn=...).
- Layout, cgroupsPath rules: layout.py; device rules: devices.py and ebpf.py; docs/cgroups.md has the
  field-by-field mapping.
"""

TYPE_CHECKING = False  # `import typing` costs ~8 ms, and `engine delete` loads this package
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from engine.cgroups.fs import CgroupError
    from engine.cgroups.layout import Layout
    from engine.cgroups.manager import Manager

__all__ = ["CgroupError", "Manager", "load_manager", "manager_at", "manager_for"]

# Manager.to_json's format (state.json's "cgroups"), and the cgroup2 hierarchy's name in it: defined here, in the
# package every reader of that state loads anyway, so that delete's shortcut (remove.py) needs neither fs.py nor a
# manager; fs.py re-exports them for the managers.
STATE_VERSION = 1
UNIFIED = "unified"


if not TYPE_CHECKING:  # type checkers see the import above, and no __getattr__ that would accept any name

    def __getattr__(name: str) -> object:
        # CgroupError is fs.py's, loaded when first asked for: `engine delete` of a stopped container imports this
        # package for remove.py, and nothing of fs.py (~0.1 ms).
        if name == "CgroupError":
            from engine.cgroups.fs import CgroupError

            return CgroupError
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def manager_for(
    cgroups_path: str | None,
    container_id: str,
    *,
    warn: "Callable[[str], None] | None" = None,
    layout: "Layout | None" = None,
    systemd: bool = False,
) -> "Manager":
    """The manager for a container's cgroup(s), not created yet (create() does that).

    cgroups_path: linux.cgroupsPath; None or "" means engine/<container_id> (relative). layout: the host's hierarchies,
    detected from /proc/self/mountinfo when not given (tests pass one to aim at a particular mount).
    systemd: the --systemd-cgroup driver (cgroups_path is then "slice:prefix:name"; engine/cgroups/systemd.py).
    """
    from engine.cgroups import layout as layout_mod
    from engine.cgroups.manager import UNIFIED

    host = layout or layout_mod.detect()
    if systemd:
        from engine.cgroups.systemd import SystemdManager

        # A Manager by delegation (SystemdManager.__getattr__ hands the rest to its cgroupfs manager).
        return SystemdManager.for_container(cgroups_path, container_id, host, warn=warn)  # type: ignore[return-value]
    path = layout_mod.clean_cgroups_path(cgroups_path, container_id)
    dirs = {h.name: layout_mod.directory_in(h, path) for h in host.v1}
    if host.unified is not None:
        dirs[UNIFIED] = layout_mod.directory_in(host.unified, path)
    return manager_at(dirs, warn=warn, layout=host, cgroups_path=path)


def manager_at(
    dirs: "Mapping[str, str]",
    *,
    warn: "Callable[[str], None] | None" = None,
    layout: "Layout | None" = None,
    cgroups_path: str = "",
) -> "Manager":
    """A manager for the given directories, keyed by hierarchy name as the host layout names them ("memory",
    "cpu,cpuacct", "name=systemd", "unified"); on a pure v2 host, {"unified": directory}. Hierarchies left out are
    not used. Nothing is touched."""
    from engine.cgroups import layout as layout_mod
    from engine.cgroups.fs import CgroupError
    from engine.cgroups.manager import UNIFIED

    host = layout or layout_mod.detect()
    mounts = {h.name: h.mount_point for h in host.v1}
    if host.unified is not None:
        mounts[UNIFIED] = host.unified.mount_point
    unknown = sorted(set(dirs) - set(mounts))
    if unknown:
        raise CgroupError(f"no {', '.join(unknown)} hierarchy on this host (it has: {', '.join(mounts)})")
    if host.mode == "v2":
        from engine.cgroups.v2 import V2Manager

        return V2Manager(cgroups_path, {UNIFIED: dirs[UNIFIED]}, {UNIFIED: mounts[UNIFIED]}, warn=warn)
    from engine.cgroups.v1 import V1Manager

    mgr = V1Manager(cgroups_path, dict(dirs), {name: mounts[name] for name in dirs}, warn=warn)
    mgr.mode = host.mode
    return mgr


def load_manager(data: "Mapping[str, Any]", *, warn: "Callable[[str], None] | None" = None) -> "Manager":
    """The manager a previous process saved with to_json() (state.json), for delete, kill, pause, exec, update."""
    from engine.cgroups.fs import CgroupError

    driver = data.get("driver", "cgroupfs")
    if driver == "systemd":
        try:
            from engine.cgroups import systemd  # type: ignore[attr-defined,unused-ignore]
        except ImportError:
            raise CgroupError("cgroup state: made by the systemd driver, which this engine does not have") from None
        # A Manager by delegation (SystemdManager.__getattr__ hands the rest to its cgroupfs manager).
        return systemd.load_manager(data, warn=warn)  # type: ignore[return-value,no-any-return,unused-ignore]
    if driver != "cgroupfs":
        raise CgroupError(f"cgroup state: unknown driver {driver!r}")
    mode = data.get("mode")
    if mode == "v2":
        from engine.cgroups.v2 import V2Manager

        return V2Manager.from_json(data, warn=warn)
    if mode in ("v1", "hybrid"):
        from engine.cgroups.v1 import V1Manager

        return V1Manager.from_json(data, warn=warn)
    raise CgroupError(f"cgroup state: unknown mode {mode!r}")
