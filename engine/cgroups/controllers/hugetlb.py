"""linux.resources.hugepageLimits -> hugetlb.<size>.limit_in_bytes (v1) or hugetlb.<size>.max (v2), and the
reservation files (.rsvd.) where the kernel has them (Linux 5.7+; the spec prefers reservation accounting).

On a hybrid host without a v1 hugetlb hierarchy (the development machine: cgroup2 owns hugetlb there) the limits
are written as v2 files in the container's unified cgroup.
"""

from __future__ import annotations

from engine.cgroups import convert, fs
from engine.cgroups.fs import fail, jpath
from engine.cgroups.values import number

KEY = "hugepageLimits"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from engine.spec.typed import HugepageLimit


def limits(entries: list[HugepageLimit], w: str) -> list[tuple[str, str, int]]:
    """(JSON path of the limit, page size name, bytes) per entry; the size must be one this kernel has."""
    sizes = convert.hugepage_sizes()
    out = []
    for i, entry in enumerate(entries):
        size = entry.get("pageSize")
        if size not in sizes:
            raise fail(
                jpath(w, i, "pageSize"),
                f"{size!r} is not a huge page size of this kernel (it has: {', '.join(sizes) or 'none'})",
            )
        limit = number(entry, "limit", jpath(w, i))
        if limit is None or limit < 0:
            raise fail(jpath(w, i, "limit"), "required, a byte count")
        out.append((jpath(w, i, "limit"), size, limit))
    return out


def _v2_target(cg: Any) -> tuple[str, str] | None:
    """(directory, mount) where the v2 files go: the v2 cgroup, or hybrid's unified one when v1 lacks hugetlb."""
    if cg.v2:
        return cg.unified_dir, cg.unified_mount
    if cg.has_v1("hugetlb") or cg.unified_dir is None:
        return None
    return cg.unified_dir, cg.unified_mount


def check(cg: Any, entries: list[HugepageLimit], w: str) -> None:
    limits(entries, w)
    target = _v2_target(cg)
    if target is not None:
        from engine.cgroups.subtree import require_offered

        require_offered(target[1], "hugetlb", w)
    elif not cg.has_v1("hugetlb"):
        raise fail(w, "this host has no hugetlb cgroup controller (not in cgroup v1 nor cgroup2)")


def apply(cg: Any, entries: list[HugepageLimit], w: str) -> None:
    target = _v2_target(cg)
    if target is None:
        directory, suffix = cg.directory_for("hugetlb", w), "limit_in_bytes"
    else:
        from engine.cgroups.subtree import enable_controllers

        directory, suffix = target[0], "max"
        enable_controllers(target[1], directory, ["hugetlb"], w)
    for where, size, limit in limits(entries, w):
        cg.write(where, directory, f"hugetlb.{size}.{suffix}", str(limit))
        if fs.exists(directory, f"hugetlb.{size}.rsvd.{suffix}"):
            cg.write(where, directory, f"hugetlb.{size}.rsvd.{suffix}", str(limit))
