"""cgroup v2 (the unified hierarchy): one directory per container; the controllers (controllers/) convert the
v1-shaped linux.resources to v2 files there.

On create every controller each ancestor offers is enabled in its cgroup.subtree_control (runc's fs2 does the
same: `engine update` may set a limit later, and stats need the accounting); the hybrid host's unified cgroup
enables only the controllers a setting needs (subtree.py).
"""

from __future__ import annotations

import os

from engine.cgroups import freezer, fs
from engine.cgroups.fs import CGROUPS_PATH
from engine.cgroups.manager import UNIFIED, Manager, load_common

TYPE_CHECKING = False  # typing costs ~8 ms at import; `engine delete` loads us
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


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

    def directory_for(self, controller: str, where: str) -> str:
        return self.dir

    def _make_dirs(self, plan: list[tuple[Any, Any, str]]) -> list[str]:
        from engine.cgroups.subtree import enable_controllers

        made = self._make_dir(self.mount, self.dir)
        enable_controllers(self.mount, self.dir, None, CGROUPS_PATH)
        return [] if made else [UNIFIED]

    def kill_file(self) -> str | None:
        path = os.path.join(self.dir, "cgroup.kill")  # Linux 5.14+
        return path if os.path.exists(path) else None

    def _release_foreign(self, directory: str) -> None:
        # We joined a cgroup we did not create: take our device program off it again.
        if self.bpf_programs:
            from engine.cgroups.controllers.devices import release

            release(directory, self.bpf_programs)
            self.bpf_programs = []

    def freeze(self) -> None:
        freezer.freeze_v2(self.dir)

    def thaw(self) -> None:
        freezer.thaw_v2(self.dir)

    def is_frozen(self) -> bool:
        return freezer.frozen_v2(self.dir)

    def is_frozen_any(self) -> bool:
        return freezer.frozen_v2(self.dir) or "frozen 1" in (fs.read_or(self.dir, "cgroup.events") or "").splitlines()

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["bpfPrograms"] = list(self.bpf_programs)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], **kw: Any) -> V2Manager:
        return cls(**load_common(data), bpf_programs=list(data.get("bpfPrograms") or []), **kw)
