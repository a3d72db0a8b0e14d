"""The container lifecycle as a `transitions` state machine (runtime.md "Lifecycle").

    new -> creating -> created -> running <-> paused
               \\          \\         \\         /
                `----------`---------`-> stopped

Every transition, and nothing else, writes state.json (atomically, via the store) and publishes the new
state to the container's sync socket, if it has one. Callers hold the container's lock while firing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transitions import EventData, Machine, MachineError

from engine.errors import InvalidState
from state.record import ContainerRecord, now_rfc3339
from state.rules import CREATED, CREATING, PAUSED, RUNNING, STOPPED
from state.store import Store

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

Warn = Callable[[str], None]


class Lifecycle:
    """One container's machine; `record` is its state, persisted on every transition."""

    def __init__(self, record: ContainerRecord, store: Store, warn: Warn | None = None) -> None:
        self.record = record
        self.store = store
        self.warn = warn or (lambda message: None)
        self.machine = Machine(
            model=self,
            states=STATES,
            transitions=TRANSITIONS,
            initial=record.status,
            auto_transitions=False,
            send_event=True,
            after_state_change="_persist",
        )

    @classmethod
    def new(cls, record: ContainerRecord, store: Store, warn: Warn | None = None) -> Lifecycle:
        record.status = NEW
        return cls(record, store, warn)

    def fire(self, trigger: str, **kwargs: Any) -> None:
        """Run a transition; one that the current status does not allow is an InvalidState with no effect."""
        try:
            self.trigger(trigger, **kwargs)
        except MachineError:
            raise InvalidState(
                f"container {self.record.id!r}: cannot {trigger.replace('_', ' ')} while {self.state}"
            ) from None

    def _mark_started(self, event: EventData) -> None:
        self.record.started = now_rfc3339()

    def _mark_finished(self, event: EventData) -> None:
        self.record.finished = now_rfc3339()
        exit_status = event.kwargs.get("exit_status")
        if exit_status is not None:
            self.record.exit_status = exit_status

    def _persist(self, event: EventData) -> None:
        self.record.status = self.state
        self.store.save(self.record)
        if self.record.sync_socket:
            self._publish()

    def _publish(self) -> None:
        from state.publish import publish  # only containers with a sync socket pay for it

        publish(self.record.sync_socket, self.record.event_state(self.state), warn=self.warn)
