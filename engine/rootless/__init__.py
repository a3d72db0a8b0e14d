"""Rootless engine: run by a user without real root, as runc decides it.

Two different facts, as in runc:

- the caller is not root (euid != 0, "RootlessEUID" in runc): the container needs a user namespace of its
  own, the caller may write only a mapping of its own uid/gid (anything more goes through newuidmap and
  newgidmap, engine/rootless/idmap.py), open_tree and chown to other ids are refused;
- the caller is root in a user namespace that is not the host's (podman's rootless "pause process" runs the
  runtime there): it may do what root may do over the namespaces its user namespace owns, but nothing that
  needs real root (mknod, the host's cgroupfs).

Either way the container gets no cgroup unless one was delegated to the caller (engine/rootless/cgroups.py),
and the state lives under $XDG_RUNTIME_DIR/engine (engine/rootless/state_root.py).

Modules: state_root.py (the default --root, on every command: stdlib only), checks.py (what create refuses
up front), idmap.py (uid_map/gid_map), cgroups.py (delegated or none), spec.py (`engine spec --rootless`),
hooks.py (the few steps of create/init/exec that differ without real root).
"""

from __future__ import annotations

import os

# /proc/self/uid_map of the host's initial user namespace: every id maps to itself.
_INITIAL_USER_NS_MAP = ["0", "0", "4294967295"]


def running_in_user_namespace() -> bool:
    """True inside any user namespace but the host's initial one (runc's userns.RunningInUserNS). Read each
    time, not cached: engine's children enter new user namespaces."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != _INITIAL_USER_NS_MAP
    except FileNotFoundError:  # a kernel without user namespaces
        return False


# Taken when engine starts: its forked children become root of a user namespace, where their own euid is 0
# whoever the caller was.
_CALLER_EUID = os.geteuid()


def unprivileged() -> bool:
    """The user who ran engine is not root (runc: RootlessEUID); also right in engine's forked children."""
    return _CALLER_EUID != 0


def rootless() -> bool:
    """No real root: not root, or root only inside a user namespace (runc's automatic choice of its rootless
    cgroup manager, shouldUseRootlessCgroupManager)."""
    return unprivileged() or running_in_user_namespace()
