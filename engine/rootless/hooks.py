"""The steps of create, the init and exec that differ without real root, each called from one line there.

- exec fifo (create): the init opens it as the container's root; a user can chown it only to itself, so when
  the container's root is another (subordinate) id the fifo is made writable by others instead, runc's mode
  0622 (it stays in the caller's 0700 state directory; the init reaches it through an fd).
- bind sources: `engine create` as root opens them with open_tree, where the container's root might not reach
  them; open_tree needs CAP_SYS_ADMIN over the caller's mount namespace, which a user does not have, so a
  user's intermediate child opens them once it is root of the container's user and mount namespaces.
- the id maps (engine/rootless/idmap.py) are written from outside: the intermediate child is dumpable while
  it waits for them, or a user could not open its /proc files.
- process.oomScoreAdj: written before the process becomes non-dumpable (the intermediate child, the exec
  joiner) and inherited from there, as runc's nsexec does. Once in a user namespace, a non-dumpable process's
  /proc/self/oom_score_adj belongs to the host's root, whom the namespace does not map: the write would be
  refused (EACCES), as root's containers with a user namespace found too.
"""

from __future__ import annotations

import errno
import os

from engine.errors import EngineError
from engine.linux.namespaces import CLONE_NEWUSER
from engine.rootless import running_in_user_namespace, unprivileged

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from typing import Any

    from engine.spec.typed import Process


def give_fifo_to_container_root(fifo: str, uid: int, gid: int) -> None:
    if uid == os.geteuid() and gid == os.getegid():
        return  # ours already
    try:
        os.chown(fifo, uid, gid)
    except PermissionError:
        if not unprivileged():
            raise
        os.chmod(fifo, 0o622)


def bind_sources_opened_by_create(new_user_namespace: bool) -> bool:
    """Whether `engine create` opens the bind sources itself (else the intermediate child does, or nobody:
    without a user namespace the init binds by path)."""
    return new_user_namespace and not unprivileged()


def open_bind_sources_in_user_namespace(plan: Any) -> None:
    """In the intermediate child, a user's container: root of the new user and mount namespaces now."""
    if not (plan.namespace_flags & CLONE_NEWUSER and unprivileged()):
        return
    from engine.setup.rootfs import open_bind_sources

    try:
        plan.bind_source_fds = open_bind_sources(plan.config.get("mounts", []), plan.bundle)
    except EngineError as err:
        raise EngineError(f"config.json: {err}") from None


def before_id_maps() -> None:
    if unprivileged():
        _set_dumpable(1)


def after_id_maps() -> None:
    if unprivileged():
        _set_dumpable(0)


def _set_dumpable(value: int) -> None:
    # Imported here: only the intermediate child calls this (engine.init has loaded syscalls there, before any
    # namespace); `engine create`'s own process, which imports this module too, makes no ctypes call.
    from engine.linux import syscalls as sc

    sc.prctl(sc.PR_SET_DUMPABLE, value)


def apply_oom_score_adj_early(process: Process) -> None:
    """Set process.oomScoreAdj now, while dumpable, and drop it from process so that nobody sets it again."""
    if "oomScoreAdj" not in process:
        return
    from engine.linux import process_attrs
    from engine.linux.procfs import ProcFS  # every write into /proc through a procfs engine proved (issue #7)

    value = process.pop("oomScoreAdj")
    try:
        with ProcFS.open() as proc:
            process_attrs.set_oom_score_adj(value, lambda data: proc.write_self("oom_score_adj", data))
    except OSError as err:
        raise EngineError(err.strerror) from None  # the message names the field and the value


# Kernel filesystems a user namespace may mount only over a namespace it owns.
_OWNED_NAMESPACE = {"sysfs": "a network", "mqueue": "an ipc", "proc": "a pid"}


def mount_refusal_hint(fstype: str | None, error: int | None) -> str:
    """Why a kernel filesystem mount was refused (EPERM) in a user namespace, for the one-line error."""
    if error != errno.EPERM or fstype not in _OWNED_NAMESPACE or not running_in_user_namespace():
        return ""
    hint = f" (in a user namespace, {fstype} needs {_OWNED_NAMESPACE[fstype]} namespace of the container's own"
    if fstype == "sysfs":
        return hint + ": add one, or bind /sys from the host as `engine spec --rootless` does)"
    return hint + ")"
