"""What the v1 (and hybrid) and v2 managers share: directories, creation and removal, joining, listing, state.

A manager knows the container's cgroup directory in each hierarchy ("dirs", keyed by hierarchy name: "memory",
"cpu,cpuacct", "name=systemd", or "unified" for cgroup2), the mount point of each, and which directories it
created itself. Only those are removed by destroy(): runtime.md, Delete: "resources associated with the
container, but not created by this container, MUST NOT be deleted".
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable, Mapping

from engine.cgroups import fs
from engine.cgroups.fs import CgroupError, fail, jpath
from engine.cgroups.layout import CGROUPS_PATH

TYPE_CHECKING = False  # typing costs ~8 ms at import; annotations here are strings
if TYPE_CHECKING:
    from typing import Any

STATE_VERSION = 1
UNIFIED = "unified"
RESOURCES = "linux.resources"


def number(section: Mapping[str, Any], key: str, where: str) -> int | None:
    """An optional integer field; the config was validated already, this guards `update` input and callers
    that build the dict by hand."""
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(jpath(where, key), f"expected an integer, got {value!r}")
    return value


def section(resources: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = resources.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise fail(jpath(where, key), f"expected an object, got {value!r}")
    return value


class Manager:
    """The container's cgroup(s). Subclasses: v1.V1Manager (v1 and hybrid hosts), v2.V2Manager."""

    mode = ""

    def __init__(
        self,
        cgroups_path: str,
        dirs: dict[str, str],
        mounts: dict[str, str],
        created: list[str] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.cgroups_path = cgroups_path
        self.dirs = dict(dirs)
        self.mounts = dict(mounts)
        self.created: list[str] = list(created or [])
        self.warnings: list[str] = []
        self._warn = warn

    # ----- the API the runtime calls -------------------------------------------------------------------------

    def create(self, resources: Mapping[str, Any] | None = None, **kw: Any) -> None:
        raise NotImplementedError

    def update(self, resources: Mapping[str, Any], **kw: Any) -> None:
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def is_frozen(self) -> bool:
        raise NotImplementedError

    def add(self, pid: int) -> None:
        """Move process `pid` (its whole thread group) into the container's cgroup in every hierarchy."""
        for name, directory in self.dirs.items():
            self._write_procs(directory, pid, name)

    def join_path_for_exec(self) -> list[str]:
        """The directories a process joins to be in the container: write its pid to <dir>/cgroup.procs (that is
        add(pid)); on cgroup v2 the single directory also suits clone3(CLONE_INTO_CGROUP)."""
        return list(self.dirs.values())

    def procs(self) -> list[int]:
        """Every process in the container's cgroups and the cgroups below them (the container may have made
        some), in every hierarchy: what `kill --all` signals."""
        found: set[int] = set()
        for directory in self.dirs.values():
            for sub in fs.walk_down(directory):
                found.update(fs.pids_in(sub))
        return sorted(found)

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
        # Parents we made (e.g. /engine), deepest first, only while empty: another container may live there.
        for directory in sorted(created - set(self.dirs.values()), key=len, reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        if errors:
            raise CgroupError("; ".join(errors))
        self.created = []

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "mode": self.mode,
            "cgroupsPath": self.cgroups_path,
            "dirs": dict(self.dirs),
            "mounts": dict(self.mounts),
            "created": list(self.created),
        }

    @property
    def paths(self) -> dict[str, str]:
        """Hierarchy name -> directory (what state.json's cgroup_paths records)."""
        return dict(self.dirs)

    # ----- helpers for subclasses ----------------------------------------------------------------------------

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        if self._warn is not None:
            self._warn(message)

    def _release_foreign(self, directory: str) -> None:
        """Hook: undo what we did to a cgroup we joined but did not create (the v2 device program)."""

    def _write_procs(self, directory: str, pid: int, name: str) -> None:
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
                raise CgroupError(
                    f"adding process {pid} to the {name} cgroup {path}: {os.strerror(err.errno or 0)}"
                ) from None

    def _make_dir(self, mount: str, directory: str, on_level: Callable[[str, str, bool], None] | None = None) -> bool:
        """mkdir -p from the mount point down to directory, recording what we created.

        on_level(dir, parent, created) runs for every level below the mount point, top down (cpuset copies
        cpus/mems there, v2 enables controllers in the parent). Returns whether the leaf was created by us.
        ENOENT on a level means a concurrent destroy removed a parent we had just seen: walk again.
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

    def _check_reusable(self, name: str, directory: str) -> None:
        """A cgroup that existed before create must be empty (config-linux.md lets a runtime refuse a non-empty
        cgroup on create, and sharing one would make kill --all or delete hit another container)."""
        pids = fs.pids_in(directory)
        if pids:
            shown = " ".join(map(str, pids[:10]))
            raise fail(
                CGROUPS_PATH,
                f"the {name} cgroup {directory} already has processes ({shown}); a new container needs an empty cgroup",
            )

    def _undo_create(self) -> None:
        """After a failed create: remove every directory we made, children first."""
        for directory in reversed(self.created):
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        self.created = []


def load_common(data: Mapping[str, Any]) -> dict[str, Any]:
    if data.get("version") != STATE_VERSION:
        raise CgroupError(f"cgroup state: unknown version {data.get('version')!r}")
    return {
        "cgroups_path": data["cgroupsPath"],
        "dirs": dict(data["dirs"]),
        "mounts": dict(data["mounts"]),
        "created": list(data.get("created") or []),
    }
