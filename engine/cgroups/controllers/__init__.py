"""linux.resources, one controller per module, each serving both the v1 (and hybrid) and the v2 manager.

A controller module has:

    KEY                       the linux.resources key it reads ("memory", "cpu", "blockIO", "hugepageLimits", ...)
    check(cg, value, where)   every refusal that needs no write (controller not mounted, no v2 equivalent, out of
                              range, malformed entries), so that a refused create or update changes nothing
    apply(cg, value, where)   the writes, in the order the kernel needs them

`cg` is the manager (engine/cgroups/manager.py) seen through what controllers use of it:

    cg.v2                               True on a pure cgroup v2 host (False on v1 and hybrid hosts)
    cg.directory_for(controller, where) the directory holding that controller's files: the v1 hierarchy that has
                                        it (an error naming `where` if none is mounted), or the one v2 directory
    cg.write(where, directory, file, value)   one write(2); on v2 an ENOENT names the controller that is missing
    cg.unified_dir, cg.unified_mount    the container's cgroup2 directory and its mount (v2, or hybrid's extra one)
    cg.warn(message)

`value` is the section as it is in the config (JSON shape); `where` its JSON path ("linux.resources.memory", or
"memory" for an `update --resources` document). The manager calls check() for every present, non-empty section
first, then apply() in TABLE order; the devices controller gets the replayed rule list (devices.Emulator), which
the manager prepares because it needs linux.devices and runc's default rules.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings
if TYPE_CHECKING:
    from types import ModuleType

# The order the files are written in. cpuset first (a v1 cpuset needs cpus and mems before anything can join it),
# the device policy next (in force before the rest), unified last (it overrides the converted values). Each entry is
# (its module's KEY, the module's name): a module is imported only when its section is there to apply (`engine
# create` of a config with devices alone loads one of the ten, ~1 ms less). tests/unit/test_cgroup_controllers.py
# holds each KEY here equal to its module's.
ORDER = (
    ("cpu", "cpuset"),
    ("devices", "devices"),
    ("memory", "memory"),
    ("cpu", "cpu"),
    ("pids", "pids"),
    ("blockIO", "blkio"),
    ("hugepageLimits", "hugetlb"),
    ("network", "network"),
    ("rdma", "rdma"),
    ("unified", "unified"),
)


def load(name: str) -> ModuleType:
    """The controller module `name` (one of ORDER's), imported now if it was not."""
    module = f"engine.cgroups.controllers.{name}"
    __import__(module)  # importlib would import warnings too
    return sys.modules[module]


def table() -> tuple[ModuleType, ...]:
    """Every controller module, in ORDER."""
    return tuple(load(name) for _, name in ORDER)
