"""`engine delete`: undo what create did, once the container is stopped (runtime.md "Delete", lifecycle
steps 12 and 13)."""

import _signal  # not signal: its enums cost ~7 ms
import posix  # not os: its import costs every command ~1 ms (engine/paths.py)

# At module level, though a delete without cgroups does not use it: as a module-level import engine/hotload.py's
# bundle runs it along with this module, where an import in the function cost importlib's round for it and its
# package (~0.1 ms of every usual delete).
from engine.cgroups.remove import remove_if_empty
from engine.errors import ContainerNotFound, EngineError
from engine.log import Log
from engine.paths import exists
from state.ids import validate_id
from state.record import ContainerRecord
from state.rules import STOPPED, require_deletable
from state.store import CONFIG_FILE, HOOKS_FILE, STATE_FILE, Store, read_all

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse  # the annotation's only: the hot path parses argv by hand

    from engine.cli import Context

KILL_TIMEOUT = 10.0


def run(ctx: "Context", args: "argparse.Namespace") -> int:
    """`engine delete [--force] <id>` (engine/cli.py calls it: OPERATION_COMMANDS)."""
    store = Store(ctx.root)
    delete(store, args.container_id, args.force, ctx.log, systemd_cgroup=ctx.systemd_cgroup)
    return 0


def delete(store: Store, container_id: str, force: bool, log: Log, systemd_cgroup: bool = False) -> None:
    if force and not exists(store.path(container_id, STATE_FILE)):
        # As runc: --force on an unknown id succeeds, and clears a directory that a create killed before
        # its first state.json left behind. (Supervisors call delete --force during cleanup, maybe twice.)
        validate_id(container_id)
        store.remove(container_id)
        return
    with store.locked(container_id) as dir_fd:
        try:
            record = store.load(container_id, dir_fd)
            status = record.observed_status()
        except ContainerNotFound:
            raise
        except (EngineError, TypeError, ValueError, AttributeError) as err:
            reason = str(err) if isinstance(err, EngineError) else f"container {container_id!r}: corrupt {STATE_FILE}"
            if not force:
                raise EngineError(f"{reason} (delete --force removes what it can find)") from None
            _delete_without_state(store, container_id, dir_fd, reason, log, systemd_cgroup)
            return
        require_deletable(container_id, status, force)
        cgroups_gone = status == STOPPED and record.cgroups and _remove_empty_cgroups(record, log)
        if status != STOPPED or (record.cgroups and not cgroups_gone):
            # Also when stopped: processes the init left behind in its cgroup (it was not their pid 1). A paused
            # container is thawed by signal_all for SIGKILL. (Imported here: the usual delete, of a stopped
            # container with empty cgroups, has nothing to signal.)
            from engine.container import signal_all, wait_for_exit

            signal_all(record, _signal.SIGKILL, warn=log.warning)
            if not wait_for_exit(record, KILL_TIMEOUT):
                raise EngineError(f"delete {container_id!r}: its init did not die within {KILL_TIMEOUT:.0f}s")
            log.debug(f"delete {container_id}: killed its processes")
        if record.status != STOPPED:
            from state.lifecycle import Lifecycle  # only when the stop still has to be recorded

            Lifecycle(record, store, warn=log.warning).fire("stop")
        hooks = None
        if exists(store.path(container_id, HOOKS_FILE)):  # only a container with hooks has the file
            from engine import hookpoints

            hooks = hookpoints.load(store.path(container_id))
        # Step 12: destroy what create made (the mounts went with the init's mount namespace), then step 13.
        if record.cgroups and not cgroups_gone:
            _remove_cgroups(record, log)
            log.debug(f"delete {container_id}: removed its cgroups")
        store.remove(container_id)
        log.debug(f"delete {container_id}: removed its state directory")
        if hooks:
            hookpoints.run("poststop", hooks, record.public_state(STOPPED), log, warn_only=True)


def _remove_empty_cgroups(record: ContainerRecord, log: Log) -> bool:
    """A stopped container's cgroups removed at once when they are empty (the usual delete): nothing to find
    and kill in them first. False when one is busy (what the init left behind): the caller kills and removes."""
    removed = remove_if_empty(record.cgroups)
    if removed:
        log.debug(f"delete {record.id}: removed its empty cgroups")
    return removed


def _remove_cgroups(record: ContainerRecord, log: Log) -> None:
    from engine.cgroups import CgroupError, load_manager

    try:
        load_manager(record.cgroups, warn=log.warning).destroy()
    except CgroupError as err:
        raise EngineError(f"delete {record.id!r}: {err}") from None


def _delete_without_state(
    store: Store, container_id: str, dir_fd: int, reason: str, log: Log, systemd_cgroup: bool = False
) -> None:
    """delete --force of a container whose state.json cannot be read (runc fails there): kill what its cgroups
    hold and remove them and the state directory. The cgroups are found by their path, as create placed them:
    linux.cgroupsPath from the config.json saved at create, or the default engine/<id> (with --systemd-cgroup,
    which podman passes to every command: the scope that path names, stopped)."""
    log.warning(f"{reason}: killing what the container's cgroups hold, removing them and its state (no poststop hooks)")
    from engine.cgroups import CgroupError
    from engine.cgroups.orphan import remove_orphan_cgroups

    try:
        remove_orphan_cgroups(
            _saved_cgroups_path(dir_fd, log), container_id, KILL_TIMEOUT, warn=log.warning, systemd=systemd_cgroup
        )
    except CgroupError as err:
        raise EngineError(f"delete {container_id!r}: {err}") from None
    store.remove(container_id)


def _saved_cgroups_path(dir_fd: int, log: Log) -> str | None:
    from state import jsonio

    try:
        fd = posix.open(CONFIG_FILE, posix.O_RDONLY | posix.O_CLOEXEC, dir_fd=dir_fd)
        try:
            data = read_all(fd)
        finally:
            posix.close(fd)
        path = jsonio.loads(data)["linux"].get("cgroupsPath")
        return path if isinstance(path, str) else None
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        log.warning(f"{CONFIG_FILE} in the state directory is unreadable: looking for the default cgroups")
        return None
