"""What runtime.md allows in each status, as plain checks (no `transitions` import: hot commands use these).

The state machine in state/machine.py enforces the same rules for the transitions themselves.
"""

from engine.errors import InvalidState

CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"
ALIVE = (CREATED, RUNNING, PAUSED)


def require_startable(container_id: str, status: str) -> None:
    # runtime.md: "Attempting to start a container that is not created MUST have no effect on the container
    # and MUST generate an error."
    if status != CREATED:
        raise InvalidState(f"cannot start container {container_id!r}: it is {status}, not created")


def require_killable(container_id: str, status: str) -> None:
    # runtime.md: "Attempting to send a signal to a container that is neither created nor running MUST have
    # no effect on the container and MUST generate an error."  (paused: runc allows it, so do we.)
    # "container not running" is runc's wording, which containerd's runc shim looks for in a failed kill to
    # know that the process already finished (anything else fails the kill, and with it a CRI StopContainer).
    if status not in ALIVE:
        raise InvalidState(f"cannot kill container {container_id!r}: container not running (it is {status})")


def require_deletable(container_id: str, status: str, force: bool) -> None:
    # runtime.md: "Attempting to delete a container that is not stopped MUST have no effect on the container
    # and MUST generate an error."  --force kills it first, as runc does.
    if status != STOPPED and not force:
        raise InvalidState(
            f"cannot delete container {container_id!r}: it is {status}, not stopped (use --force to kill it first)"
        )
