"""Freezing a cgroup: v1's freezer.state and v2's cgroup.freeze.

v1: write FROZEN until freezer.state reads FROZEN, rewriting it and now and then thawing briefly while it stays
FREEZING (runc's loop: v1 cannot freeze reliably while tasks fork), at most FREEZE_TIMEOUT; thawed again on
failure so that nothing is left half frozen (runc #2774). v2: cgroup.freeze 1, then wait for "frozen 1" in
cgroup.events; thawed again on a timeout.
"""

from __future__ import annotations

import time

from engine.cgroups import fs
from engine.cgroups.fs import CgroupError
from engine.errors import suppress

FREEZE_TIMEOUT = 10.0


def freeze_v1(d: str) -> None:
    try:
        _freeze_v1(d)
    except CgroupError:
        with suppress(CgroupError):
            fs.write("freeze", d, "freezer.state", "THAWED")
        raise


def _freeze_v1(d: str) -> None:
    deadline = time.monotonic() + FREEZE_TIMEOUT
    attempt = 0
    while True:
        if attempt % 50 == 49:
            fs.write("freeze", d, "freezer.state", "THAWED")
            time.sleep(0.01)
        fs.write("freeze", d, "freezer.state", "FROZEN")
        state = (fs.read_or(d, "freezer.state", "") or "").strip()
        if state == "FROZEN":
            return
        if state != "FREEZING":
            raise CgroupError(f"freeze: unexpected {d}/freezer.state {state!r}")
        if time.monotonic() >= deadline:
            raise CgroupError(f"freeze: {d} stayed FREEZING for {FREEZE_TIMEOUT:.0f}s")
        attempt += 1
        time.sleep(0.001 if attempt < 10 else 0.01)


def thaw_v1(d: str) -> None:
    fs.write("thaw", d, "freezer.state", "THAWED")


def state_v1(d: str) -> str:
    """freezer.state once it has settled (FREEZING is transient), THAWED if unreadable."""
    deadline = time.monotonic() + 1.0
    while True:
        state = (fs.read_or(d, "freezer.state", "THAWED") or "THAWED").strip()
        if state != "FREEZING" or time.monotonic() >= deadline:
            return state
        time.sleep(0.001)


def frozen_by_itself_v1(d: str) -> bool:
    """FROZEN through this cgroup's own freezer.state, not only because an ancestor froze."""
    return state_v1(d) == "FROZEN" and (fs.read_or(d, "freezer.self_freezing", "1") or "1").strip() == "1"


def freeze_v2(d: str) -> None:
    fs.write("freeze", d, "cgroup.freeze", "1")
    deadline = time.monotonic() + FREEZE_TIMEOUT
    delay = 0.001
    while True:
        events = fs.read_or(d, "cgroup.events") or ""
        if "frozen 1" in events.splitlines():
            return
        if time.monotonic() >= deadline:
            with suppress(CgroupError):
                fs.write("freeze", d, "cgroup.freeze", "0")
            raise CgroupError(f"freeze: {d} did not report frozen within {FREEZE_TIMEOUT:.0f}s; thawed it again")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def thaw_v2(d: str) -> None:
    fs.write("thaw", d, "cgroup.freeze", "0")


def frozen_v2(d: str) -> bool:
    return (fs.read_or(d, "cgroup.freeze", "0") or "0").strip() == "1"
