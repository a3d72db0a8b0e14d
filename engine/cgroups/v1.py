"""cgroup v1 (and hybrid) hosts: the container's cgroup in every mounted hierarchy, named ones (name=systemd)
included, as runc's fs driver does; the controllers (controllers/) write their v1 files there.

On a hybrid host the container also gets a cgroup in the cgroup2 ("unified") hierarchy, as runc's systemd driver
and crun do: it carries hugetlb here (v2 owns it on this kind of host), `unified` settings, freezing when v1 has
no freezer, and tracking (procs() sees processes there too). If that mkdir is refused (read-only cgroup2 mount)
and no setting needs it, the container simply has no unified cgroup.
"""

from __future__ import annotations

import os

from engine.cgroups import freezer
from engine.cgroups.fs import CgroupError, fail
from engine.cgroups.manager import UNIFIED, Manager, load_common

TYPE_CHECKING = False  # typing costs ~8 ms at import; annotations here are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    from engine.cgroups.manager import Plan
    from engine.spec.typed import Device, Resources


class V1Manager(Manager):
    mode = "v1"  # "hybrid" when the host also has a cgroup2 mount (set by the factory and kept in the state)

    def dir_for(self, controller: str) -> str | None:
        for name, directory in self.dirs.items():
            if name != UNIFIED and controller in name.split(","):
                return directory
        return None

    def has_v1(self, controller: str) -> bool:
        return self.dir_for(controller) is not None

    def directory_for(self, controller: str, where: str) -> str:
        directory = self.dir_for(controller)
        if directory is None:
            raise fail(where, f"the {controller} cgroup controller is not mounted on this host")
        return directory

    def plan(
        self,
        resources: Resources | None = None,
        *,
        linux_devices: Iterable[Device] | None = None,
        device_rules: str = "always",
    ) -> Plan:
        if self.dir_for("cpuset") is not None:
            # create() copies cpus and mems into each new cpuset level with it: loaded with the rest of the plan.
            from engine.cgroups.controllers import cpuset  # noqa: F401

        return super().plan(resources, linux_devices=linux_devices, device_rules=device_rules)

    def _make_dirs(self, plan: list[tuple[Any, Any, str]]) -> list[str]:
        existing = []
        for name, directory in list(self.dirs.items()):
            on_level = _cpuset_levels(directory) if "cpuset" in name.split(",") else None
            try:
                made = self._make_dir(self.mounts[name], directory, on_level)
            except CgroupError:
                if name == UNIFIED and not {c.KEY for c, _, _ in plan} & {"unified", "hugepageLimits"}:
                    # A read-only or foreign cgroup2 mount: nothing here needs it, so go without.
                    del self.dirs[name]
                    self.warn(
                        f"no cgroup in the cgroup2 hierarchy at {self.mounts[name]} (not writable); "
                        "continuing without it"
                    )
                    continue
                raise
            if not made:
                existing.append(name)
        return existing

    def _write(self, plan: list[tuple[Any, Any, str]], creating: bool) -> None:
        super()._write(plan, creating)
        cpuset = self.dir_for("cpuset")
        if creating and cpuset is not None:
            from engine.cgroups.controllers.cpuset import copy_if_empty

            copy_if_empty(cpuset, os.path.dirname(cpuset))

    # ----- freezer: v1's, or the unified cgroup's on a hybrid host without one ----------------------------------

    def freeze(self) -> None:
        d, v1 = self._freezer("freeze")
        (freezer.freeze_v1 if v1 else freezer.freeze_v2)(d)

    def thaw(self) -> None:
        d, v1 = self._freezer("thaw")
        (freezer.thaw_v1 if v1 else freezer.thaw_v2)(d)

    def is_frozen(self) -> bool:
        d = self.dir_for("freezer")
        if d is not None:
            return freezer.frozen_by_itself_v1(d)
        return self.unified_dir is not None and freezer.frozen_v2(self.unified_dir)

    def is_frozen_any(self) -> bool:
        d = self.dir_for("freezer")
        if d is not None and freezer.state_v1(d) == "FROZEN":
            return True
        return self.unified_dir is not None and freezer.frozen_v2(self.unified_dir)

    def _freezer(self, verb: str) -> tuple[str, bool]:
        """(directory, is v1): the v1 freezer, or the unified cgroup's cgroup.freeze on a hybrid host without one."""
        d = self.dir_for("freezer")
        if d is not None:
            return d, True
        if self.unified_dir is None:
            raise CgroupError(f"{verb}: this host has neither a v1 freezer nor a cgroup2 hierarchy")
        return self.unified_dir, False

    @classmethod
    def from_json(cls, data: Mapping[str, Any], **kw: Any) -> V1Manager:
        mgr = cls(**load_common(data), **kw)
        mgr.mode = data.get("mode", "v1")
        return mgr


def _cpuset_levels(leaf: str) -> Callable[[str, str, bool], None]:
    # The kernel refuses tasks in a cpuset whose cpus or mems is empty, and a new v1 cpuset starts empty: copy
    # them from the parent at every level above the leaf (runc's cpusetEnsureParent). The leaf gets the config's
    # values first and only then the parent's for what is still empty (an exclusive sibling would otherwise make
    # the copy fail): V1Manager._write.
    def level(directory: str, parent: str, made: bool) -> None:
        if directory != leaf:
            from engine.cgroups.controllers.cpuset import copy_if_empty

            copy_if_empty(directory, parent)

    return level
