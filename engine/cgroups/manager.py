"""The cgroup manager: what the v1 (and hybrid) and the v2 manager share, and the interface the runtime uses.

A manager knows the container's cgroup directory in each hierarchy ("dirs", keyed by hierarchy name: "memory",
"cpu,cpuacct", "name=systemd", or "unified" for cgroup2), the mount point of each, and which directories it
created itself. Only those are removed by destroy(): runtime.md, Delete: "resources associated with the
container, but not created by this container, MUST NOT be deleted".

linux.resources is applied by the controllers of engine/cgroups/controllers (one module per controller, shared
by v1 and v2), through the few methods below that they use (directory_for, write, has_v1, unified_dir, ...).
"""

from __future__ import annotations

import errno
import os
import time

from engine.cgroups import fs
from engine.cgroups.fs import CGROUPS_PATH, CgroupError, fail, jpath
from engine.cgroups.fs import STATE_VERSION as STATE_VERSION  # re-exported: the managers' state format
from engine.cgroups.fs import UNIFIED as UNIFIED  # re-exported
from engine.errors import suppress

TYPE_CHECKING = False  # typing costs ~8 ms at import; `engine delete` and `kill` load this module
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    from engine.cgroups.devices import Emulator
    from engine.spec.typed import Device, Resources

    # (controller module, its section of linux.resources, the JSON path): what create() applies, in order.
    Plan = list[tuple[Any, Any, str]]

RESOURCES = "linux.resources"


class JoinError(CgroupError):
    """Writing a pid to cgroup.procs failed; errno kept for the callers that can do something about it."""

    def __init__(self, message: str, errno_: int | None) -> None:
        super().__init__(message)
        self.errno = errno_


class Manager:
    """The container's cgroup(s). Subclasses: v1.V1Manager (v1 and hybrid hosts), v2.V2Manager."""

    mode = ""  # "v1" | "hybrid" | "v2"
    driver = "cgroupfs"

    def __init__(
        self,
        cgroups_path: str,
        dirs: dict[str, str],
        mounts: dict[str, str],
        created: list[str] | None = None,
        warn: Callable[[str], None] | None = None,
        shared: list[list[int]] | None = None,
    ) -> None:
        self.cgroups_path = cgroups_path
        self.dirs = dict(dirs)
        self.mounts = dict(mounts)
        self.created: list[str] = list(created or [])
        # Processes that were in the container's (pre-existing) cgroup before it: [pid, start time] pairs. The
        # container shares the cgroup with them; kill --all and delete leave them alone.
        self.shared: list[list[int]] = [list(p) for p in shared or []]
        self.warnings: list[str] = []
        self._warn = warn

    # ----- what controllers use ---------------------------------------------------------------------------------

    @property
    def v2(self) -> bool:
        return self.mode == "v2"

    @property
    def unified_dir(self) -> str | None:
        return self.dirs.get(UNIFIED)

    @property
    def unified_mount(self) -> str:
        return self.mounts.get(UNIFIED, "")

    def directory_for(self, controller: str, where: str) -> str:
        """The directory holding `controller`'s files; an error naming `where` if this host has none."""
        raise NotImplementedError

    def has_v1(self, controller: str) -> bool:
        """Whether a v1 hierarchy has `controller` (always False on a pure v2 host)."""
        return False

    def write(self, where: str, directory: str, name: str, value: str) -> None:
        if directory == self.unified_dir:
            from engine.cgroups.subtree import write_v2

            write_v2(where, directory, name, value)
        else:
            fs.write(where, directory, name, value)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        if self._warn is not None:
            self._warn(message)

    # ----- creating and changing ------------------------------------------------------------------------------

    def create(
        self,
        resources: Resources | None = None,
        *,
        linux_devices: Iterable[Device] | None = None,
        device_rules: str = "always",
        plan: Plan | None = None,
    ) -> None:
        """Make the cgroups (mkdir -p in every hierarchy) and apply linux.resources; all or nothing: a failure
        removes what was made. A cgroup that already existed is reused: refused if frozen, shared (with a
        warning) if it holds processes. device_rules="if given": no device policy unless resources has
        "devices" (a rootless engine may not load a device program: engine/rootless/cgroups.py). plan: what
        plan() returned for the same arguments, made beforehand; resources and the rest are then not read."""
        if plan is None:
            plan = self.plan(resources, linux_devices=linux_devices, device_rules=device_rules)
        try:
            existing = self._make_dirs(plan)
            if self.is_frozen_any():
                raise fail(CGROUPS_PATH, "the container's cgroup is frozen; a new container needs a thawed cgroup")
            self._note_existing(existing)
            self._write(plan, creating=True)
        except BaseException:
            self._undo_create()
            raise

    def plan(
        self,
        resources: Resources | None = None,
        *,
        linux_devices: Iterable[Device] | None = None,
        device_rules: str = "always",
    ) -> Plan:
        """create()'s first half, which touches no cgroup: every check of linux.resources that needs no write (a
        CgroupError names the field), the controllers loaded, the device rules built. `engine create` calls it
        before it forks its child, so that this work (imports, allocations) is not done in memory the two
        processes share, where each page written after the fork is copied first."""
        return self._plan(resources or {}, RESOURCES, linux_devices, device_rules=device_rules)

    def adopt(self, resources: Resources | None = None, *, linux_devices: Iterable[Device] | None = None) -> None:
        """Apply linux.resources to cgroups that exist already and are the container's own (a systemd scope
        made for it): create() without making or checking anything; destroy() leaves these directories."""
        self._write(self._plan(resources or {}, RESOURCES, linux_devices, device_rules="always"), creating=True)

    def update(
        self,
        resources: Resources,
        *,
        linux_devices: Iterable[Device] | None = None,
        json_root: str = RESOURCES,
    ) -> None:
        """`engine update`. Everything that can be refused is refused before the first write; the device policy
        changes only if the document has "devices". json_root="" makes error paths relative to an `update
        --resources` document."""
        self._write(self._plan(resources, json_root, linux_devices, device_rules="if given"), creating=False)

    def _plan(self, res: Resources, where: str, linux_devices: Iterable[Device] | None, device_rules: str) -> Plan:
        """(controller, value, JSON path) for every section to apply, after every check that needs no write."""
        from engine.cgroups.controllers import ORDER, load

        if not isinstance(res, dict):
            raise fail(where or "resources", f"expected an object, got {res!r}")
        devices = self._device_policy(res, where, linux_devices, device_rules)
        plan = []
        for key, name in ORDER:
            value = devices if key == "devices" else res.get(key)
            if not value:
                continue
            controller = load(name)  # only the controllers of the sections present
            w = jpath(where, key)
            if key != "devices" and not isinstance(value, list if key == "hugepageLimits" else dict):
                raise fail(w, f"expected {'a list' if key == 'hugepageLimits' else 'an object'}, got {value!r}")
            controller.check(self, value, w)
            plan.append((controller, value, w))
        return plan

    def _device_policy(
        self, res: Resources, where: str, linux_devices: Iterable[Device] | None, device_rules: str
    ) -> Emulator | None:
        given = "devices" in res
        if device_rules != "always" and not given:
            return None  # runc's update never touches the device policy
        from engine.cgroups.devices import container_rules

        policy = container_rules(res, where, linux_devices, warn=self.warn)  # rule errors first, whatever the host
        if self.v2 or self.has_v1("devices"):
            return policy
        if res.get("devices") or device_rules != "always":
            raise fail(jpath(where, "devices"), "the devices cgroup controller is not mounted on this host")
        self.warn("the devices cgroup controller is not mounted: the container's device access is not restricted")
        return None

    def _write(self, plan: list[tuple[Any, Any, str]], creating: bool) -> None:
        for controller, value, w in plan:
            controller.apply(self, value, w)

    def _make_dirs(self, plan: list[tuple[Any, Any, str]]) -> list[str]:
        """mkdir every hierarchy's cgroup; the names of the hierarchies where it existed already."""
        raise NotImplementedError

    def _make_dir(self, mount: str, directory: str, on_level: Callable[[str, str, bool], None] | None = None) -> bool:
        """mkdir -p from the mount point down to directory, recording what we created.

        on_level(dir, parent, created) runs for every level below the mount point, top down (cpuset copies
        cpus/mems there). Returns whether the leaf was created by us. ENOENT on a level means a concurrent destroy
        removed a parent we had just seen: walk again.
        """
        mount = mount.rstrip("/")
        rel = os.path.relpath(directory, mount)
        if rel.startswith(".."):
            raise fail(CGROUPS_PATH, f"{directory} is outside the cgroup mount {mount}")
        if not os.path.isdir(mount):
            raise fail(CGROUPS_PATH, f"the cgroup hierarchy at {mount} is not mounted any more")
        for _ in range(5):
            current, leaf_created = mount, False
            try:
                for part in rel.split("/"):
                    parent, current = current, os.path.join(current, part)
                    try:
                        os.mkdir(current, 0o755)
                        self.created.append(current)
                        leaf_created = True
                    except FileExistsError:
                        if not os.path.isdir(current):
                            raise fail(CGROUPS_PATH, f"{current} exists and is not a cgroup directory") from None
                        leaf_created = False
                    if on_level is not None:
                        on_level(current, parent, leaf_created)
                return leaf_created
            except FileNotFoundError:
                continue
            except OSError as err:
                raise fail(CGROUPS_PATH, f"creating cgroup {current}: {fs.os_reason(err)}") from None
        raise fail(CGROUPS_PATH, f"creating cgroup {directory}: its parent kept disappearing")

    def _note_existing(self, names: list[str]) -> None:
        """A cgroup that existed before create may hold processes. config-linux.md lets a runtime refuse that;
        runc 1.1 goes on (supervisors that pre-create cgroups rely on it), and so do we, with a warning, keeping
        those processes out of kill --all and delete."""
        from state.process import start_time

        found: dict[int, str] = {}
        for name in names:
            for pid in fs.pids_in(self.dirs[name]):
                found.setdefault(pid, self.dirs[name])
        if not found:
            return
        self.shared = [[pid, start_time(pid) or 0] for pid in sorted(found)]
        shown = " ".join(str(pid) for pid in sorted(found)[:10]) + (" ..." if len(found) > 10 else "")
        self.warn(
            f"{CGROUPS_PATH}: the cgroup {next(iter(found.values()))} already has processes ({shown}); the container "
            "shares it with them (as with runc), and engine's kill --all and delete leave them alone"
        )

    def _undo_create(self) -> None:
        """After a failed create: remove every directory we made, children first."""
        for directory in reversed(self.created):
            with suppress(OSError):
                os.rmdir(directory)
        self.created = []

    # ----- processes --------------------------------------------------------------------------------------------

    def add(self, pid: int) -> None:
        """Move process `pid` (its whole thread group) into the container's cgroup in every hierarchy."""
        for name, directory in self.dirs.items():
            self._join(directory, pid, name)

    def join_exec(self, pid: int, cgroup_args: Iterable[str] = (), *, init_pid: int = 0) -> None:
        """`engine exec`: put `pid` in the container's cgroup in every hierarchy, or in the sub-cgroups that
        `--cgroup [controller:]path` names (exec_join.py, runc's semantics). On cgroup v2 a container whose
        init moved to a sub-cgroup with domain controllers enabled refuses processes in its top cgroup (EBUSY):
        then, as runc does, the process joins the init's cgroup (not when --cgroup was given)."""
        from engine.cgroups.exec_join import exec_targets

        args = list(cgroup_args)
        for name, directory in exec_targets(self, args).items():
            try:
                self._join(directory, pid, name)
            except JoinError as err:
                fallback = None
                if not args and name == UNIFIED and err.errno == errno.EBUSY:
                    fallback = self._init_cgroup(init_pid)
                if fallback is None:
                    raise
                self._join(fallback, pid, name)

    def join_path_for_exec(self) -> list[str]:
        """The directories a process joins to be in the container: write its pid to <dir>/cgroup.procs (that is
        add(pid)); on cgroup v2 the single directory also suits clone3(CLONE_INTO_CGROUP)."""
        return list(self.dirs.values())

    def procs(self) -> list[int]:
        """Every process in the container's cgroups and the cgroups below them (the container may have made
        some), in every hierarchy, except those it shares a pre-existing cgroup with."""
        found: set[int] = set()
        for directory in self.dirs.values():
            for sub in fs.walk_down(directory):
                found.update(fs.pids_in(sub))
        return sorted(found - self.spared())

    def spared(self) -> set[int]:
        """The processes that were in a pre-existing cgroup before the container, and still are those processes."""
        if not self.shared:
            return set()
        from state.process import start_time

        return {pid for pid, started in self.shared if start_time(pid) == started}

    def signal_all(self, sig: int) -> set[int] | None:
        """Signal every process of the container (kill --all, delete) so that a reused pid is never hit: through
        cgroup.kill (v2, SIGKILL, when the kernel has it), else freeze, signal through pidfds, thaw (kill.py).
        The pids signalled, or None when cgroup.kill took them all."""
        if self.kill_file() is None and not self.procs():
            # No cgroup.kill to write, nothing to signal and nothing in there that could fork: the usual case for
            # delete, which calls this for a stopped container too (the processes its init left behind), and then
            # does not load kill.py.
            return set()
        from engine.cgroups.kill import signal_cgroups

        return signal_cgroups(self, sig)

    def kill_file(self) -> str | None:
        """The cgroup.kill file that SIGKILLs the container's whole cgroup tree at once, if there is one to use."""
        return None

    def _join(self, directory: str, pid: int, name: str) -> None:
        path = os.path.join(directory, "cgroup.procs")
        for attempt in range(5):
            try:
                fs.write("cgroup.procs", directory, "cgroup.procs", str(pid))
                return
            except fs.WriteError as err:
                # EINVAL: the task may still be TASK_NEW (just forked); runc retries the same way.
                if err.errno == errno.EINVAL and attempt < 4:
                    time.sleep(0.03)
                    continue
                reason = os.strerror(err.errno or 0)
                raise JoinError(f"adding process {pid} to the {name} cgroup {path}: {reason}", err.errno) from None

    def _init_cgroup(self, init_pid: int) -> str | None:
        """The cgroup2 directory the container's init is in, if it is inside the container's cgroup."""
        base = self.unified_dir
        try:
            with open(f"/proc/{init_pid}/cgroup") as f:
                lines = f.read().splitlines()
        except OSError:
            return None
        for line in lines:
            if line.startswith("0::") and base is not None:
                directory = os.path.normpath(self.unified_mount.rstrip("/") + "/" + line[3:].lstrip("/"))
                if directory.startswith(base + "/"):
                    return directory
        return None

    # ----- freezing -------------------------------------------------------------------------------------------

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def is_frozen(self) -> bool:
        """Paused by us (not only frozen because an ancestor is)."""
        raise NotImplementedError

    def is_frozen_any(self) -> bool:
        """Frozen for whatever reason (an ancestor's freezer too): a new container cannot start there."""
        raise NotImplementedError

    # ----- removing -------------------------------------------------------------------------------------------

    def destroy(self) -> None:
        """Remove the cgroups this manager created (and any the container made below them), killing nothing.
        Raises CgroupError if one stays busy; everything removable is removed first."""
        errors: list[str] = []
        created = set(self.created)
        for directory in self.dirs.values():
            if directory in created:
                try:
                    fs.rmdir_tree(directory)
                except CgroupError as err:
                    errors.append(str(err))
            else:
                self._release_foreign(directory)
        from engine.cgroups.remove import remove_parents  # here: create, which loads this module, rarely destroys

        remove_parents(self.dirs.values(), created)
        if errors:
            raise CgroupError("; ".join(errors))
        self.created = []

    def _release_foreign(self, directory: str) -> None:
        """Hook: undo what we did to a cgroup we joined but did not create (the v2 device program)."""

    # ----- state ----------------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "version": STATE_VERSION,
            "driver": self.driver,
            "mode": self.mode,
            "cgroupsPath": self.cgroups_path,
            "dirs": dict(self.dirs),
            "mounts": dict(self.mounts),
            "created": list(self.created),
        }
        if self.shared:
            data["shared"] = [list(p) for p in self.shared]
        return data

    @property
    def paths(self) -> dict[str, str]:
        """Hierarchy name -> directory (what state.json's cgroup_paths records)."""
        return dict(self.dirs)


def load_common(data: Mapping[str, Any]) -> dict[str, Any]:
    if data.get("version") != STATE_VERSION:
        raise CgroupError(f"cgroup state: unknown version {data.get('version')!r}")
    return {
        "cgroups_path": data["cgroupsPath"],
        "dirs": dict(data["dirs"]),
        "mounts": dict(data["mounts"]),
        "created": list(data.get("created") or []),
        "shared": list(data.get("shared") or []),
    }
