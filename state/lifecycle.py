"""A container's lifecycle fired through the compiled machine (state/lifecycle_table.py): what the commands load.

The definition is the `transitions` machine in state/machine.py; the table is its answer for every (state,
trigger) pair, and tests/unit/test_lifecycle_table.py checks both agree. This module holds only what firing
needs, so the hot commands (start, delete) do not load the definition (its transition list, the machine-run
Lifecycle) to record one transition.
"""

from engine.errors import InvalidState
from state import lifecycle_table
from state.record import ContainerRecord, now_rfc3339
from state.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Warn = Callable[[str], None]

NEW = "new"  # before the id is claimed; never written to disk


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
