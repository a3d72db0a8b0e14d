"""`engine delete`: undo what create did, once the container is stopped (runtime.md "Delete", lifecycle
steps 12 and 13)."""

from __future__ import annotations

import signal

from engine import hookpoints
from engine.container import signal_all, wait_for_exit
from engine.errors import EngineError
from engine.log import Log
from state.machine import Lifecycle
from state.rules import STOPPED, require_deletable
from state.store import Store

KILL_TIMEOUT = 10.0


def delete(store: Store, container_id: str, force: bool, log: Log) -> None:
    with store.locked(container_id) as dir_fd:
        record = store.load(container_id, dir_fd)
        status = record.observed_status()
        require_deletable(container_id, status, force)
        if status != STOPPED:
            signal_all(record, signal.SIGKILL)
            if not wait_for_exit(record, KILL_TIMEOUT):
                raise EngineError(f"delete {container_id!r}: its init did not die within {KILL_TIMEOUT:.0f}s")
        if record.status != STOPPED:
            Lifecycle(record, store, warn=log.warning).fire("stop")
        hooks = hookpoints.load(store.path(container_id))
        # Step 12: destroy what create made (the mounts went with the init's mount namespace), then step 13.
        store.remove(container_id)
        hookpoints.run("poststop", hooks, record.public_state(STOPPED), log, warn_only=True)
