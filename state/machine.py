"""The container lifecycle (runtime.md "Lifecycle"), defined as a `transitions` state machine.

    new -> creating -> created -> running <-> paused
               \\          \\         \\         /
                `----------`---------`-> stopped

Every transition, and nothing else, writes state.json (atomically, via the store) and publishes the new
state to the container's sync socket, if it has one. Callers hold the container's lock while firing.

The definition is STATES, TRANSITIONS and MACHINE_OPTIONS below, given to `transitions.Machine`
(definition_machine()). Importing transitions costs `engine start` 20-30 ms, so the commands fire through its
compiled form instead: state/lifecycle_table.py, the machine's answer for every (state, trigger) pair, written
by `python -m state.machine`. tests/unit/test_lifecycle_table.py checks that the table and the machine agree on
every pair and fails while the table is stale. MachineLifecycle fires through the machine itself.
"""

from __future__ import annotations

import os
import sys

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
TRANSITIONS: list[dict[str, Any]] = [
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
MACHINE_OPTIONS: dict[str, Any] = {"auto_transitions": False, "send_event": True, "after_state_change": "_persist"}
TABLE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lifecycle_table.py")


class Event:
    """What a callback gets when the table fires: the trigger's keyword arguments, as transitions' EventData."""

    __slots__ = ("kwargs",)

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs


class Lifecycle:
    """One container's lifecycle; `record` is its state, persisted on every transition."""

    def __init__(self, record: ContainerRecord, store: Store, warn: Warn | None = None) -> None:
        self.record = record
        self.store = store
        self.warn = warn or (lambda message: None)
        self.state = record.status

    @classmethod
    def new(cls, record: ContainerRecord, store: Store, warn: Warn | None = None) -> Lifecycle:
        record.status = NEW
        return cls(record, store, warn)

    def fire(self, trigger: str, **kwargs: Any) -> None:
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

    def _mark_started(self, event: Any) -> None:
        self.record.started = now_rfc3339()

    def _mark_finished(self, event: Any) -> None:
        self.record.finished = now_rfc3339()
        exit_status = event.kwargs.get("exit_status")
        if exit_status is not None:
            self.record.exit_status = exit_status

    def _persist(self, event: Any) -> None:
        self.record.status = self.state
        self.store.save(self.record)
        if self.record.sync_socket:
            self._publish()

    def _publish(self) -> None:
        from state.publish import publish  # only containers with a sync socket pay for it

        publish(self.record.sync_socket, self.record.event_state(self.state), warn=self.warn)


class MachineLifecycle(Lifecycle):
    """The same lifecycle fired through the `transitions` machine itself: the definition, run."""

    def __init__(self, record: ContainerRecord, store: Store, warn: Warn | None = None) -> None:
        super().__init__(record, store, warn)
        self.machine = definition_machine(self, initial=record.status)

    def fire(self, trigger: str, **kwargs: Any) -> None:
        from transitions import MachineError

        try:
            self.trigger(trigger, **kwargs)  # type: ignore[attr-defined]  # added by the machine
        except MachineError:
            raise self._invalid(trigger) from None


def definition_machine(model: object, initial: str = NEW) -> Any:
    """The lifecycle as a transitions.Machine on `model` (which gets its `state` and triggers)."""
    from transitions import Machine

    return Machine(model=model, states=STATES, transitions=TRANSITIONS, initial=initial, **MACHINE_OPTIONS)


# ---- the compiled form ------------------------------------------------------------------------------------


class TableError(Exception):
    """The machine uses something the table (and Lifecycle.fire) cannot reproduce."""


def definition_hash() -> str:
    """A hash of the definition: the table records the one it was made from."""
    import hashlib

    text = repr((STATES, TRANSITIONS, sorted(MACHINE_OPTIONS.items())))
    return hashlib.sha256(text.encode()).hexdigest()


def _names(callbacks: list[Any], where: str) -> tuple[str, ...]:
    if not all(isinstance(c, str) for c in callbacks):
        raise TableError(f"{where}: callbacks must be method names, got {callbacks!r}")
    return tuple(callbacks)


def compile_table() -> tuple[dict[tuple[str, str], tuple[str, tuple[str, ...], tuple[str, ...]]], tuple[str, ...]]:
    """(state, trigger) -> (dest, before callbacks, after callbacks), and the machine's after_state_change,
    read off the machine; TableError for any feature Lifecycle.fire does not implement."""
    machine = definition_machine(None)  # no model: only the states, events and transitions are read
    for option in ("before_state_change", "prepare_event", "finalize_event", "on_exception", "on_final"):
        if getattr(machine, option, []):
            raise TableError(f"machine option {option} is not supported by the table")
    if machine.ignore_invalid_triggers or not machine.send_event:
        raise TableError("the table assumes invalid triggers raise and callbacks get the event")
    for name, state in machine.states.items():
        if state.on_enter or state.on_exit or getattr(state, "on_final", None) or state.ignore_invalid_triggers:
            raise TableError(f"state {name}: enter/exit callbacks are not supported by the table")
    table = {}
    for trigger, event in machine.events.items():
        for source, transitions in event.transitions.items():
            where = f"{trigger} from {source}"
            if len(transitions) != 1:
                raise TableError(f"{where}: {len(transitions)} transitions (conditional ones?) are not supported")
            (transition,) = transitions
            if transition.conditions or transition.prepare or transition.dest is None:
                raise TableError(f"{where}: conditions, prepare and internal transitions are not supported")
            table[(source, trigger)] = (
                transition.dest,
                _names(transition.before, where),
                _names(transition.after, where),
            )
    return dict(sorted(table.items())), _names(machine.after_state_change, "after_state_change")


def render_table() -> str:
    table, after_state_change = compile_table()
    triggers = sorted({trigger for _, trigger in table})
    lines = [
        "# GENERATED by `python -m state.machine` from the transitions machine in state/machine.py: do not edit.",
        "# tests/unit/test_lifecycle_table.py fails while it is stale.",
        '"""The lifecycle machine compiled: what each trigger does from each state (no transitions import)."""',
        "",
        f'DEFINITION_HASH = "{definition_hash()}"',
        f"TRIGGERS = frozenset({triggers!r})",
        f"AFTER_STATE_CHANGE = {after_state_change!r}",
        "# (state, trigger): (destination, before callbacks, after callbacks)",
        "TABLE = {",
        *(f"    {key!r}: {value!r}," for key, value in table.items()),
        "}",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = render_table()
    with open(TABLE_FILE) as f:
        current = f.read()
    if argv[1:] == ["--check"]:
        if current != text:
            print(f"{TABLE_FILE} is stale: run python -m state.machine", file=sys.stderr)
            return 1
        return 0
    if current != text:
        with open(TABLE_FILE, "w") as f:
            f.write(text)
        print(f"wrote {TABLE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
