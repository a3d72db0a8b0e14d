"""linux.resources.unified: each key is a file of the container's cgroup2 directory, written verbatim, after
everything else (it overrides the converted values).

On a hybrid host the keys go to the container's cgroup in the cgroup2 hierarchy and must belong to a controller
that hierarchy has (cgroup.* files always do); a v1-only host has nowhere to put them: an error naming the key.
"""

from __future__ import annotations

from engine.cgroups import fs
from engine.cgroups.fs import fail, jpath

KEY = "unified"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def check(cg: Any, unified: dict[str, str], w: str) -> None:
    if cg.unified_dir is None:
        raise fail(w, "this host has no cgroup2 (unified) hierarchy mounted; unified settings need one")
    from engine.cgroups.subtree import offered

    have = set(offered(cg.unified_mount))
    for key, value in unified.items():
        where = jpath(w, key)
        if not key or "/" in key or key in (".", ".."):
            raise fail(where, "must be a file name of the cgroup (no slashes)")
        if not isinstance(value, str):
            raise fail(where, f"expected a string, got {value!r}")
        if "." not in key:
            raise fail(where, "must be a cgroup file name of the form CONTROLLER.PARAMETER")
        ctrl = key.split(".", 1)[0]
        if ctrl not in have and ctrl != "cgroup" and not fs.exists(cg.unified_dir, key):
            raise fail(
                where,
                f"the {ctrl} controller is not available in the cgroup2 hierarchy at {cg.unified_mount} "
                f"(it offers: {' '.join(sorted(have)) or 'none'})",
            )


def apply(cg: Any, unified: dict[str, str], w: str) -> None:
    from engine.cgroups.subtree import enable_controllers, offered

    have = set(offered(cg.unified_mount))
    for key, value in unified.items():
        where = jpath(w, key)
        ctrl = key.split(".", 1)[0]
        if ctrl in have:
            enable_controllers(cg.unified_mount, cg.unified_dir, [ctrl], where)
        # Multi-line values (io.max for several devices) are one entry per write(2), as the kernel parses them.
        for line in [ln for ln in value.split("\n") if ln] if "\n" in value else [value]:
            cg.write(where, cg.unified_dir, key, line)
