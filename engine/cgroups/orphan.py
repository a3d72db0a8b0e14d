"""The cgroups of a container whose state is lost (a corrupt state.json): found again by their path, emptied and
removed, for `delete --force`.

create placed them by linux.cgroupsPath (or the default engine/<id>), so manager_for() finds the same directories,
provided this process runs in the cgroup create ran in when the path is relative (the default is). Whatever they
hold is killed (freeze, signal through pidfds, thaw; or cgroup.kill), then they are removed. Two refusals keep a
hostile or mistaken path from reaching beyond the container: a cgroup that holds this very process (the path named
one of our own ancestors) is left alone, and nothing above the container's own cgroup is removed, except the
default's empty "engine" parent.
"""

from __future__ import annotations

import os
import time

from engine.cgroups.fs import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

SIGKILL = 9


def remove_orphan_cgroups(
    cgroups_path: str | None,
    container_id: str,
    timeout: float,
    warn: Callable[[str], None] | None = None,
    systemd: bool = False,
) -> list[str]:
    """Kill and remove the container's cgroups; the directories removed. systemd: the path is the systemd
    driver's "slice:prefix:name", and removing means stopping that scope too."""
    from engine.cgroups import layout, manager_for

    host = layout.detect()
    try:
        mgr = manager_for(cgroups_path, container_id, warn=warn, layout=host, systemd=systemd)
    except CgroupError as err:
        if warn is not None:
            warn(f"no cgroups to look for: {err}")
        return []
    ours = [h.own_dir() for h in (*host.v1, *([host.unified] if host.unified else []))]
    for name, directory in list(mgr.dirs.items()):
        if not os.path.isdir(directory):
            del mgr.dirs[name]
        elif any(own == directory or own.startswith(directory + "/") for own in ours):
            del mgr.dirs[name]
            mgr.warn(f"{directory} holds this engine process: not killing or removing anything there")
    if not mgr.dirs:
        return []
    mgr.signal_all(SIGKILL)
    deadline = time.monotonic() + timeout
    while mgr.procs() and time.monotonic() < deadline:
        time.sleep(0.02)
    removed = list(mgr.dirs.values())
    mgr.created = list(removed)
    if not cgroups_path:  # the default engine/<id>: its "engine" parent too, if no other container is there
        mgr.created += [os.path.dirname(d) for d in removed]
    try:
        mgr.destroy()
    except CgroupError as err:
        raise CgroupError(f"removing the container's cgroups: {err}") from None
    return removed
