"""Pure conversions from the spec's (cgroup v1 shaped) values to cgroup files, unit-tested on their own."""

from __future__ import annotations

import math
import os

# cpu.shares range the kernel accepts (MIN_SHARES, MAX_SHARES) and cpu.weight's.
MIN_SHARES, MAX_SHARES = 2, 262144
MIN_WEIGHT, MAX_WEIGHT = 1, 10000


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] (default 1024) -> cpu.weight [1, 10000] (default 100).

    runc >= 1.3.2 / crun >= 1.23 (runc PR 4785, opencontainers/cgroups): a quadratic in log2(shares) fitted through
    (2 -> 1), (1024 -> 100) and (262144 -> 10000), so the v1 default maps to the v2 default. The old linear formula
    1 + (shares - 2) * 9999 / 262142 mapped 1024 to 39 and starved default containers next to systemd services
    (kubernetes#131216); `old_shares_to_weight` keeps it for reference and tests.
    """
    if shares <= MIN_SHARES:
        return MIN_WEIGHT
    if shares >= MAX_SHARES:
        return MAX_WEIGHT
    lg = math.log2(shares)
    exponent = (lg * lg + 125 * lg) / 612.0 - 7.0 / 34.0
    return math.ceil(10**exponent)


def old_shares_to_weight(shares: int) -> int:
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000], runc's linear mapping (used when io.bfq.weight is absent)."""
    return 1 + (weight - 10) * 9999 // 990


def swap_v2(swap: int | None, limit: int | None) -> int | None:
    """The spec's memory.swap (memory+swap total, as v1's memsw) -> cgroup v2 memory.swap.max (swap alone).

    Returns None (leave memory.swap.max alone), -1 ("max") or the swap-only byte count. runc's rules:
    unlimited memory with no swap given means unlimited swap too; swap -1 is unlimited; otherwise swap needs a
    positive memory limit and must be at least that limit. Raises ValueError with the reason.
    """
    if limit == -1 and swap is None:
        return -1
    if swap is None or swap == -1:
        return swap
    if limit is None or limit == -1:
        raise ValueError("a swap limit needs a memory limit (swap is the memory+swap total)")
    if swap < limit:
        raise ValueError(f"{swap} is below memory.limit {limit} (swap is the memory+swap total, not swap alone)")
    return swap - limit


def v2_bytes(value: int) -> str:
    """-1 (the spec's "unlimited") is "max" in v2 files; anything else is the number."""
    return "max" if value == -1 else str(value)


def hugepage_sizes(sysfs: str = "/sys/kernel/mm/hugepages") -> list[str]:
    """The kernel's huge page sizes named as in hugetlb.<size>.* files ("2MB", "1GB", "64KB")."""
    try:
        names = os.listdir(sysfs)
    except OSError:
        return []
    kbs = sorted(int(n[len("hugepages-") : -2]) for n in names if n.startswith("hugepages-") and n.endswith("kB"))
    return [hugepage_name(kb * 1024) for kb in kbs]


def hugepage_name(size: int) -> str:
    # mm/hugetlb_cgroup.c mem_fmt(): the largest unit that the size reaches, integer division.
    if size >= 1 << 30:
        return f"{size >> 30}GB"
    if size >= 1 << 20:
        return f"{size >> 20}MB"
    return f"{size >> 10}KB"


INT64_MAX = (1 << 63) - 1


def ram_in_bytes(text: str) -> int:
    """runc's memory flags (--memory 50M): the size grammar of docker/go-units RAMInBytes as vendored in runc
    1.1.5, checked against it on this machine: digits with optional ".digits" parts, one optional space, then an
    optional binary unit k m g t p (any case), an optional "i" and an optional "b": "50M", "50mib", "1.5g", "1 g",
    "100b". Anything else ("-5", "+5", " 5", ".5m", "1e3", "50Mx") is refused; "1.2.3" matches but is no number.
    Raises ValueError with runc's reason."""
    import re  # only `engine update` parses sizes

    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)*) ?([kKmMgGtTpP])?[iI]?[bB]?", text)
    if match is None:
        raise ValueError(f"invalid size: {text!r}")
    try:
        size = float(match.group(1))
    except ValueError:
        raise ValueError(f"{match.group(1)!r} is not a number") from None
    unit = match.group(2)
    value = int(size * 1024 ** ("kmgtp".index(unit.lower()) + 1)) if unit else int(size)
    if value > INT64_MAX:
        raise ValueError(f"{text!r} is more than the largest byte count ({INT64_MAX})")
    return value
