"""cgroup v2 files that every v2 write may need: enabling controllers in the ancestors' cgroup.subtree_control,
and a write whose ENOENT names the controller that is missing instead of just "No such file"."""

from __future__ import annotations

import errno
import os

from engine.cgroups import fs
from engine.cgroups.fs import fail

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


def ancestors(mount: str, leaf: str) -> list[str]:
    """The cgroups from the mount point down to leaf's parent (where subtree_control decides what leaf gets)."""
    mount = mount.rstrip("/")
    out = [mount]
    rel = os.path.relpath(os.path.dirname(leaf), mount)
    if rel != ".":
        for part in rel.split("/"):
            out.append(os.path.join(out[-1], part))
    return out


def offered(directory: str) -> list[str]:
    """The controllers a cgroup2 directory's cgroup.controllers lists."""
    return (fs.read_or(directory, "cgroup.controllers") or "").split()


def require_offered(mount: str, controller: str, where: str) -> None:
    """Refuse, before anything is written, a setting whose controller this cgroup2 hierarchy does not have."""
    have = offered(mount)
    if controller not in have:
        raise fail(
            where,
            f"the {controller} controller is not available in the cgroup2 hierarchy at {mount} "
            f"(it offers: {' '.join(sorted(have)) or 'none'})",
        )


def enable_controllers(mount: str, leaf: str, wanted: Iterable[str] | None, where: str) -> None:
    """Enable controllers for leaf: in every ancestor's cgroup.subtree_control, top down.

    wanted=None: every controller each ancestor offers, failures ignored (runc's behaviour; a setting that needs
    one then fails with a clear message). Otherwise each wanted controller must be available and enabled.
    """
    for directory in ancestors(mount, leaf):
        available = offered(directory)
        enabled = (fs.read_or(directory, "cgroup.subtree_control") or "").split()
        names = available if wanted is None else list(wanted)
        missing = [c for c in names if c not in enabled]
        if not missing:
            continue
        if wanted is not None:
            for c in missing:
                if c not in available:
                    raise fail(
                        where,
                        f"the {c} controller is not available in {directory} "
                        f"(cgroup.controllers: {' '.join(available) or 'none'})",
                    )
        try:
            fs.write(where, directory, "cgroup.subtree_control", " ".join("+" + c for c in missing))
        except fs.WriteError:
            for c in missing:  # one at a time: one refusal (e.g. a threaded subtree) must not block the others
                try:
                    fs.write(where, directory, "cgroup.subtree_control", "+" + c)
                except fs.WriteError:
                    if wanted is not None:
                        raise


def write_v2(where: str, directory: str, name: str, value: str) -> None:
    """fs.write, but an ENOENT for a controller's file says that the controller is not enabled there."""
    try:
        fs.write(where, directory, name, value)
    except fs.WriteError as err:
        if err.errno == errno.ENOENT:
            ctrl = name.split(".", 1)[0]
            have = offered(directory)
            if ctrl != "cgroup" and ctrl not in have:
                raise fail(
                    where,
                    f"the {ctrl} controller is not enabled for {directory} "
                    f"(its cgroup.controllers: {' '.join(have) or 'none'})",
                ) from None
        raise
