"""The container lifecycle (runtime.md "Lifecycle"), defined as a `transitions` state machine.

    new -> creating -> created -> running <-> paused
               \\          \\         \\         /
                `----------`---------`-> stopped

Every transition, and nothing else, writes state.json (atomically, via the store) and publishes the new
state to the container's sync socket, if it has one. Callers hold the container's lock while firing.

The definition is STATES, TRANSITIONS and MACHINE_OPTIONS below, given to `transitions.Machine`
(definition_machine()). Importing transitions costs `engine start` 20-30 ms, so the commands fire through its
compiled form instead: state/lifecycle_table.py, the machine's answer for every (state, trigger) pair, written
by state/lifecycle_codegen.py (`python -m engine.generate`). tests/unit/test_lifecycle_table.py checks that the
table and the machine agree on every pair and fails while the table is stale. Lifecycle, which fires through the
table, lives in state/lifecycle.py, which every command loads instead of this definition; MachineLifecycle,
here, fires through the machine itself.
"""

from state.lifecycle import NEW, Lifecycle
from state.record import ContainerRecord
from state.rules import CREATED, CREATING, PAUSED, RUNNING, STOPPED
from state.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from state.lifecycle import Warn

__all__ = ["MACHINE_OPTIONS", "STATES", "TRANSITIONS", "MachineLifecycle", "definition_machine"]

STATES = [NEW, CREATING, CREATED, RUNNING, PAUSED, STOPPED]
TRANSITIONS: "list[dict[str, Any]]" = [
    {"trigger": "begin_create", "source": NEW, "dest": CREATING},
    {"trigger": "finish_create", "source": CREATING, "dest": CREATED},
    {"trigger": "start", "source": CREATED, "dest": RUNNING, "before": "_mark_started"},
    {"trigger": "pause", "source": RUNNING, "dest": PAUSED},
    {"trigger": "resume", "source": PAUSED, "dest": RUNNING},
    {
        "trigger": "stop",
        "source": [CREATING, CREATED, RUNNING, PAUSED],
        "dest": STOPPED,
        "before": "_mark_finished",
    },
]
MACHINE_OPTIONS: "dict[str, Any]" = {"auto_transitions": False, "send_event": True, "after_state_change": "_persist"}


class MachineLifecycle(Lifecycle):
    """The same lifecycle fired through the `transitions` machine itself: the definition, run."""

    def __init__(self, record: ContainerRecord, store: Store, warn: "Warn | None" = None) -> None:
        super().__init__(record, store, warn)
        self.machine = definition_machine(self, initial=record.status)

    def fire(self, trigger: str, **kwargs: "Any") -> None:
        from transitions import MachineError

        try:
            self.trigger(trigger, **kwargs)  # type: ignore[attr-defined]  # added by the machine
        except MachineError:
            raise self._invalid(trigger) from None


def definition_machine(model: object, initial: str = NEW) -> "Any":
    """The lifecycle as a transitions.Machine on `model` (which gets its `state` and triggers)."""
    from transitions import Machine

    return Machine(model=model, states=STATES, transitions=TRANSITIONS, initial=initial, **MACHINE_OPTIONS)
