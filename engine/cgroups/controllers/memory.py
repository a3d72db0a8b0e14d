"""linux.resources.memory.

| field              | cgroup v1                                              | cgroup v2                            |
|--------------------|--------------------------------------------------------|--------------------------------------|
| limit              | memory.limit_in_bytes (EBUSY explained: usage, peak)   | memory.max (-1 -> max)               |
| swap (memory+swap) | memory.memsw.limit_in_bytes, ordered against the limit | memory.swap.max = swap - limit       |
| reservation        | memory.soft_limit_in_bytes                             | memory.low                           |
| swappiness         | memory.swappiness (0-100)                              | error: no per-cgroup swappiness      |
| disableOOMKiller   | memory.oom_control                                     | true: error                          |
| useHierarchy       | memory.use_hierarchy (current kernels refuse 0)        | false: error                         |
| checkBeforeUpdate  | (v1 kernels refuse a limit below usage anyway)         | refuse a limit at or below the usage |
| kernel, kernelTCP  | ignored with a warning, as runc (the kernel dropped kmem limits)                              |
"""

from __future__ import annotations

import errno

from engine.cgroups import convert, fs
from engine.cgroups.fs import fail, jpath
from engine.cgroups.values import byte_limit, number

KEY = "memory"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from engine.spec.typed import Memory


def check(cg: Any, mem: Memory, w: str) -> None:
    limit, swap = byte_limit(mem, "limit", w), byte_limit(mem, "swap", w)
    byte_limit(mem, "reservation", w)
    swappiness = number(mem, "swappiness", w)
    if cg.v2:
        # config-linux.md, Unified: "If the conversion is not possible the runtime MUST generate an error"
        # (runc ignores these on v2). Values that ask for v2's only behaviour pass.
        if swappiness is not None:
            raise fail(jpath(w, "swappiness"), "cgroup v2 has no per-cgroup swappiness (only the global vm.swappiness)")
        if mem.get("disableOOMKiller") is True:
            raise fail(jpath(w, "disableOOMKiller"), "cgroup v2 cannot disable the OOM killer for a cgroup")
        if mem.get("useHierarchy") is False:
            raise fail(jpath(w, "useHierarchy"), "cgroup v2 accounting is always hierarchical")
        try:
            convert.swap_v2(swap, limit)
        except ValueError as err:
            raise fail(jpath(w, "swap"), str(err)) from None
        return
    if limit is not None and swap is not None and limit > 0 and 0 < swap < limit:
        raise fail(jpath(w, "swap"), f"{swap} is below memory.limit {limit} (swap is the memory+swap total)")
    if swappiness is not None and not 0 <= swappiness <= 100:
        raise fail(jpath(w, "swappiness"), f"{swappiness} is outside 0-100")
    if _sets_v1_files(mem, w):
        cg.directory_for("memory", w)


def apply(cg: Any, mem: Memory, w: str) -> None:
    for key in ("kernel", "kernelTCP"):
        if mem.get(key) is not None:
            cg.warn(
                f"{jpath(w, key)}: ignored: kernel memory limits are deprecated and gone from current kernels "
                "(runc ignores them too)"
            )
    if cg.v2:
        _apply_v2(cg, mem, w)
    elif _sets_v1_files(mem, w):
        _apply_v1(cg.directory_for("memory", w), mem, w)


def _sets_v1_files(mem: Memory, w: str) -> bool:
    limits = [byte_limit(mem, key, w) for key in ("limit", "swap", "reservation")]
    others = [number(mem, "swappiness", w), mem.get("disableOOMKiller"), mem.get("useHierarchy")]
    return any(v is not None for v in limits + others)


def _apply_v1(d: str, mem: Memory, w: str) -> None:
    limit, swap = byte_limit(mem, "limit", w), byte_limit(mem, "swap", w)
    reservation, swappiness = byte_limit(mem, "reservation", w), number(mem, "swappiness", w)
    has_memsw = fs.exists(d, "memory.memsw.limit_in_bytes")
    if limit == -1 and swap is None and has_memsw:
        swap = -1  # unlimited memory with no swap given: unlimited swap too (runc)
    if swap is not None and not has_memsw:
        if swap != -1:
            raise fail(
                jpath(w, "swap"), f"this kernel has no swap accounting ({d}/memory.memsw.limit_in_bytes is missing)"
            )
        swap = None
    # memsw must stay >= limit at every step: raise the swap first when growing, the limit first when shrinking.
    if limit is not None and swap is not None:
        current = int(fs.read(d, "memory.limit_in_bytes"))
        if swap == -1 or current < swap:
            _write_swap(d, swap, w)
            _write_limit(d, limit, w)
        else:
            _write_limit(d, limit, w)
            _write_swap(d, swap, w)
    elif limit is not None:
        _write_limit(d, limit, w)
    elif swap is not None:
        _write_swap(d, swap, w)
    if reservation is not None:
        fs.write(jpath(w, "reservation"), d, "memory.soft_limit_in_bytes", str(reservation))
    if swappiness is not None:
        fs.write(jpath(w, "swappiness"), d, "memory.swappiness", str(swappiness))
    if mem.get("disableOOMKiller") is not None:
        fs.write(jpath(w, "disableOOMKiller"), d, "memory.oom_control", "1" if mem["disableOOMKiller"] else "0")
    if mem.get("useHierarchy") is not None:
        try:
            fs.write(jpath(w, "useHierarchy"), d, "memory.use_hierarchy", "1" if mem["useHierarchy"] else "0")
        except fs.WriteError as err:
            if mem["useHierarchy"] is False and err.errno == errno.EINVAL:
                raise err.with_detail("this kernel only does hierarchical accounting") from None
            raise


def _write_limit(d: str, limit: int, w: str) -> None:
    try:
        fs.write(jpath(w, "limit"), d, "memory.limit_in_bytes", str(limit))
    except fs.WriteError as err:
        if err.errno != errno.EBUSY:
            raise
        usage = fs.read_or(d, "memory.usage_in_bytes", "?") or "?"
        peak = fs.read_or(d, "memory.max_usage_in_bytes", "?") or "?"
        raise err.with_detail(f"below the current usage {usage.strip()}, peak {peak.strip()}") from None


def _write_swap(d: str, swap: int, w: str) -> None:
    fs.write(jpath(w, "swap"), d, "memory.memsw.limit_in_bytes", str(swap))


def _apply_v2(cg: Any, mem: Memory, w: str) -> None:
    d = cg.unified_dir
    limit, swap = byte_limit(mem, "limit", w), byte_limit(mem, "swap", w)
    reservation = byte_limit(mem, "reservation", w)
    swap_max = convert.swap_v2(swap, limit)  # check() refused what does not convert
    if mem.get("checkBeforeUpdate") and ((limit or 0) > 0 or (swap or 0) > 0):
        _check_usage(d, limit, swap, w)
    if swap_max is not None:
        value = convert.v2_bytes(swap_max)
        if fs.exists(d, "memory.swap.max") or value not in ("max", "0"):
            # Without swap accounting, "unlimited" and "no swap" are what the kernel does anyway (runc too).
            cg.write(jpath(w, "swap"), d, "memory.swap.max", value)
    if limit is not None:
        cg.write(jpath(w, "limit"), d, "memory.max", convert.v2_bytes(limit))
    if reservation is not None:
        cg.write(jpath(w, "reservation"), d, "memory.low", convert.v2_bytes(reservation))


def _check_usage(d: str, limit: int | None, swap: int | None, w: str) -> None:
    """memory.checkBeforeUpdate: refuse a limit at or below the current usage (v1's behaviour) instead of letting
    the v2 kernel OOM-kill the container."""
    try:
        usage = int(fs.read(d, "memory.current"))
    except (OSError, ValueError):
        return  # best effort, like runc: nothing to compare with
    if limit is not None and limit > 0 and limit <= usage:
        raise fail(jpath(w, "limit"), f"{limit} is not above the current usage {usage} (checkBeforeUpdate)")
    swap_usage = int(fs.read_or(d, "memory.swap.current", "0") or 0)
    if swap is not None and swap > 0 and swap <= usage + swap_usage:
        raise fail(
            jpath(w, "swap"),
            f"{swap} is not above the current memory+swap usage {usage + swap_usage} (checkBeforeUpdate)",
        )
