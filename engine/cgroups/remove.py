"""A stopped container's cgroups removed at once, from what state.json saved of them (Manager.to_json): `engine
delete`'s usual case, as runc does it (an rmdir in each hierarchy), without loading the managers (manager.py,
v1.py, freezer.py: ~0.5 ms of imports) nor reading every hierarchy's cgroup.procs to find processes first.

An empty cgroup can only be removed, and a busy one refuses (EBUSY: processes in it, or cgroups below it): then
the caller takes the slow path (load_manager(...).signal_all, then destroy(), which skips what is gone already).
"""

import posix  # not os: its import costs every command ~1 ms (engine/paths.py)

from engine.cgroups import STATE_VERSION, UNIFIED
from engine.errors import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any


def remove_if_empty(saved: "Mapping[str, Any]") -> bool:
    """True when every cgroup of the saved state is gone; False, with nothing left half-decided, when the slow
    path must take over: a busy cgroup, a pre-existing one (shared with processes that are not ours, and
    kept), the systemd driver (its unit must be stopped), or a state this does not know."""
    if saved.get("driver", "cgroupfs") != "cgroupfs" or saved.get("version") != STATE_VERSION:
        return False  # the manager's destroy, or its clear error about the state
    dirs = saved.get("dirs")
    created = set(saved.get("created") or ())
    if not isinstance(dirs, dict) or any(directory not in created for directory in dirs.values()):
        return False
    # The freezer (v1's, or cgroup2's where v1 has none) last: if a busy cgroup stops us, the slow path still has
    # it to freeze the container while it signals (kill.py).
    for _, directory in sorted(dirs.items(), key=_freezing_last):
        try:
            posix.rmdir(directory)
        except FileNotFoundError:
            pass
        except OSError:
            return False  # EBUSY: processes or cgroups in it; the slow path finds and kills them
    remove_parents(dirs.values(), created)
    return True


def remove_parents(leaves: "Iterable[str]", created: "Iterable[str]") -> None:
    """The parents create made for the container's cgroups (e.g. /engine), deepest first, only while empty:
    another container may live there."""
    for directory in sorted(set(created) - set(leaves), key=len, reverse=True):
        with suppress(OSError):
            posix.rmdir(directory)


def _freezing_last(item: tuple[str, str]) -> int:
    name = item[0]
    return 2 if "freezer" in name.split(",") else 1 if name == UNIFIED else 0
