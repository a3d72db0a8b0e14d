"""linux.resources.cpu.cpus and .mems -> cpuset.cpus and cpuset.mems, the same files in v1 and v2.

A new v1 cpuset starts with empty cpus and mems, and the kernel refuses tasks in it until both are set: the v1
manager copies them from the parent at every level it creates (runc's cpusetEnsureParent), the leaf last, after
the config's values (copy_if_empty).
"""

from __future__ import annotations

from engine.cgroups import fs
from engine.cgroups.fs import jpath

KEY = "cpu"
FIELDS: tuple[Literal["cpus", "mems"], ...] = ("cpus", "mems")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    from engine.spec.typed import CPU


def check(cg: Any, cpu: CPU, w: str) -> None:
    for key in FIELDS:
        if cpu.get(key):
            cg.directory_for("cpuset", jpath(w, key))


def apply(cg: Any, cpu: CPU, w: str) -> None:
    for key in FIELDS:
        if cpu.get(key):
            where = jpath(w, key)
            cg.write(where, cg.directory_for("cpuset", where), f"cpuset.{key}", str(cpu[key]))


def copy_if_empty(directory: str, parent: str) -> None:
    for key in FIELDS:
        name = f"cpuset.{key}"
        if not (fs.read_or(directory, name) or "").strip():
            value = (fs.read_or(parent, name) or "").strip()
            if value:
                fs.write(f"linux.resources.cpu.{key}", directory, name, value)
