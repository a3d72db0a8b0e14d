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
table and the machine agree on every pair and fails while the table is stale. MachineLifecycle fires through
the machine itself.
"""

from engine.errors import InvalidState
from state import lifecycle_table
from state.record import ContainerRecord, now_rfc3339
from state.rules import CREATED, CREATING, PAUSED, RUNNING, STOPPED
from state.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Warn = Callable[[str], None]

NEW = "new"  # before the id is claimed; never written to disk
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


class Event:
    """What a callback gets when the table fires: the trigger's keyword arguments, as transitions' EventData."""

    __slots__ = ("kwargs",)

    def __init__(self, kwargs: "dict[str, Any]") -> None:
        self.kwargs = kwargs


class Lifecycle:
    """One container's lifecycle; `record` is its state, persisted on every transition."""

    def __init__(self, record: ContainerRecord, store: Store, warn: "Warn | None" = None) -> None:
        self.record = record
        self.store = store
        self.warn = warn or (lambda message: None)
        self.state = record.status

    @classmethod
    def new(cls, record: ContainerRecord, store: Store, warn: "Warn | None" = None) -> "Lifecycle":
        record.status = NEW
        return cls(record, store, warn)

    def fire(self, trigger: str, **kwargs: "Any") -> None:
        """Run a transition; one that the current status does not allow is an InvalidState with no effect."""
        step = lifecycle_table.TABLE.get((self.state, trigger))
        if step is None:
            if trigger not in lifecycle_table.TRIGGERS:
                raise AttributeError(f"Do not know event named '{trigger}'.")  # as transitions says it
            raise self._invalid(trigger)
        dest, before, after = step
        event = Event(kwargs)
        for name in before:
            getattr(self, name)(event)
        self.state = dest
        for name in after + lifecycle_table.AFTER_STATE_CHANGE:
            getattr(self, name)(event)

    def _invalid(self, trigger: str) -> InvalidState:
        return InvalidState(f"container {self.record.id!r}: cannot {trigger.replace('_', ' ')} while {self.state}")

    def _mark_started(self, event: "Any") -> None:
        self.record.started = now_rfc3339()

    def _mark_finished(self, event: "Any") -> None:
        self.record.finished = now_rfc3339()
        exit_status = event.kwargs.get("exit_status")
        if exit_status is not None:
            self.record.exit_status = exit_status

    def _persist(self, event: "Any") -> None:
        self.record.status = self.state
        self.store.save(self.record)
        if self.record.sync_socket:
            self._publish()

    def _publish(self) -> None:
        from state.publish import publish  # only containers with a sync socket pay for it

        publish(self.record.sync_socket, self.record.event_state(self.state), warn=self.warn)


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
