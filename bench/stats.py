"""Order statistics for noisy timings.

Medians and p10/p90, not means: the machine is shared (2 cores, other test runs), so a few samples land on a
busy moment and would drag a mean; the median of interleaved samples is what both runtimes saw alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default).

    Interpolating keeps p10/p90 meaningful with as few as 15-20 samples, where nearest-rank would jump.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(samples: Sequence[float]) -> float:
    return percentile(samples, 50)


@dataclass(frozen=True)
class Summary:
    """One operation of one runtime, in seconds."""

    n: int
    median: float
    p10: float
    p90: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        return cls(len(samples), median(samples), percentile(samples, 10), percentile(samples, 90))


def ratio(engine: float, runc: float) -> float:
    """engine / runc; infinite when runc took no measurable time (never silently 0 or a crash)."""
    return engine / runc if runc > 0 else math.inf
