"""A rootless container's cgroup: one of its own in a cgroup v2 tree delegated to the caller, or none.

runc's rule (its rootless cgroup managers): without permission to make the cgroup, a container that asks for
no cgroupsPath and no limits simply runs in the caller's cgroup; one that does is an error. Device rules do
not count: rootless, no device node can be made (the host's are bind-mounted with their own permissions) and
runc ignores the devices controller; engine leaves it out.

"Delegated" (systemd's Delegate=yes, e.g. `systemd-run --user --scope -p Delegate=yes`) means here: the host
is cgroup v2 only, the directory the container's cgroup goes into is writable by the caller, and so is the
cgroup.procs file of the lowest cgroup above both the caller's and the container's (moving a process needs
that). On a v1 or hybrid host a user never owns the controllers' hierarchies.
"""

from __future__ import annotations

import os
import posixpath

from engine.errors import ConfigError
from engine.rootless import rootless

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from engine.spec.typed import Linux, Resources


def field_needing_a_cgroup(linux: Linux) -> str | None:
    """The config field that asks for a cgroup of the container's own, or None."""
    if linux.get("cgroupsPath"):
        return "linux.cgroupsPath"
    for key, value in linux.get("resources", {}).items():
        if key != "devices" and value not in (None, {}, []):
            return f"linux.resources.{key}"
    return None


def delegation_problem(cgroups_path: str | None, container_id: str) -> str | None:
    """Why this caller cannot make the container's cgroup, or None when it can."""
    from engine.cgroups import layout

    host = layout.detect()
    if host.mode != "v2" or host.unified is None:
        return f"this host's cgroups are {host.mode} (only a cgroup v2 tree can be delegated to a user)"
    target = layout.directory_in(host.unified, layout.clean_cgroups_path(cgroups_path, container_id))
    existing = target
    while not os.path.isdir(existing):
        existing = posixpath.dirname(existing)
    uid = os.geteuid()
    if not os.access(existing, os.W_OK):
        return f"{existing} is not writable by uid {uid} (not delegated to it)"
    common = posixpath.commonpath([host.unified.own_dir(), target])
    if not os.access(posixpath.join(common, "cgroup.procs"), os.W_OK):
        return f"{common}/cgroup.procs is not writable by uid {uid} (not delegated to it)"
    return None


def _rootless(rootless_engine: bool | None) -> bool:
    """The caller's answer when it asked already (create asks once: each rootless() reads /proc/self/uid_map)."""
    return rootless() if rootless_engine is None else rootless_engine


def use_cgroups(linux: Linux, container_id: str, *, rootless_engine: bool | None = None) -> bool:
    """Whether create makes the container's cgroups; ConfigError when the config needs one it cannot get.
    rootless_engine: rootless() if the caller asked already (each asking reads /proc/self/uid_map)."""
    if not _rootless(rootless_engine):
        return True
    problem = delegation_problem(linux.get("cgroupsPath"), container_id)
    if problem is None:
        return True
    field = field_needing_a_cgroup(linux)
    if field is not None:
        raise ConfigError(
            f"config.json: {field}: a rootless container gets a cgroup only in a delegated cgroup v2 tree, and"
            f" {problem}: remove it to run in the caller's cgroup"
        )
    return False


def without_devices(resources: Resources | None, *, rootless_engine: bool | None = None) -> Resources | None:
    """linux.resources minus the device rules, which a rootless engine leaves alone (see the module doc)."""
    if not resources or not _rootless(rootless_engine):
        return resources
    rest = resources.copy()
    rest.pop("devices", None)
    return rest


def device_rules(*, rootless_engine: bool | None = None) -> str:
    """The cgroup managers' device_rules: "if given" rootless (no device program: loading one needs
    CAP_SYS_ADMIN in the host's user namespace), "always" otherwise."""
    return "if given" if _rootless(rootless_engine) else "always"
