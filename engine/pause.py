"""pause/resume: the cgroup freezer, and the running <-> paused transitions of the machine."""

from __future__ import annotations

from engine.cli import Context
from engine.errors import EngineError, InvalidState
from state.lifecycle import Lifecycle
from state.store import Store


def set_frozen(ctx: Context, container_id: str, *, frozen: bool) -> None:
    from engine.cgroups import CgroupError, load_manager

    store = Store(ctx.root)
    with store.locked(container_id) as dir_fd:
        record = store.load(container_id, dir_fd)
        status = record.observed_status()
        wanted = "running" if frozen else "paused"
        if status != wanted:
            verb = "pause" if frozen else "resume"
            raise InvalidState(f"cannot {verb} container {container_id!r}: it is {status}, not {wanted}")
        if not record.cgroups:
            raise EngineError(f"container {container_id!r} has no cgroup to freeze")
        cgroups = load_manager(record.cgroups, warn=ctx.log.warning)
        try:
            cgroups.freeze() if frozen else cgroups.thaw()
        except CgroupError as err:
            raise EngineError(str(err)) from None
        Lifecycle(record, store, warn=ctx.log.warning).fire("pause" if frozen else "resume")
