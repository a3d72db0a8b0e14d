"""`engine spec --rootless`: the default config turned into one an unprivileged user can run, as runc's
`spec --rootless` turns its own (runc's specconv.ToRootless):

- a user namespace, mapping container root to the caller's uid and gid only (no subordinate ids needed);
- no network namespace: a user's new one would hold nothing but a down loopback (runc's choice too);
- /sys bind-mounted (rbind, read-only) from the host: sysfs can only be mounted by the owner of the network
  namespace, and the container shares the host's;
- no uid=/gid= mount options: gid=5 on /dev/pts names a group the single mapping does not have;
- no linux.resources: without a delegated cgroup there is nothing to apply them to.

engine's default differs from runc's in one way that stays: a cgroup namespace (runc's has one only on
cgroup v2 hosts). A user namespace may mount the host's cgroup hierarchies, v1 ones included, inside a cgroup
namespace it owns, so the cgroup mount works rootless on every host.
"""

from __future__ import annotations

import os
from typing import Any


def to_rootless(config: dict[str, Any], uid: int, gid: int) -> dict[str, Any]:
    """config changed in place (and returned) for a caller with the given euid and egid."""
    linux = config.setdefault("linux", {})
    namespaces = [ns for ns in linux.get("namespaces") or [] if ns["type"] not in ("network", "user")]
    linux["namespaces"] = [*namespaces, {"type": "user"}]
    linux["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
    linux.pop("resources", None)
    mounts = []
    for mount in config.get("mounts") or []:
        if os.path.normpath(mount["destination"]) == "/sys":
            mounts.append(
                {
                    "destination": "/sys",
                    "type": "none",
                    "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
                }
            )
            continue
        if "options" in mount:
            mount["options"] = [o for o in mount["options"] if not o.startswith(("uid=", "gid="))]
        mounts.append(mount)
    config["mounts"] = mounts
    # The keys in the order runc writes them: the mappings before the namespaces.
    config["linux"] = {
        "uidMappings": linux.pop("uidMappings"),
        "gidMappings": linux.pop("gidMappings"),
        **linux,
    }
    return config
