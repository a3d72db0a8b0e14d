"""state/lifecycle_table.py is the transitions machine of state/machine.py, compiled; and it is not stale.

The commands fire transitions through the table (Lifecycle.fire), so that `engine start` does not import
transitions; MachineLifecycle fires them through the machine itself. Every (state, trigger) pair must get the
same answer from both: the same new state, the same callbacks in the same order, the same state.json, or the
same error with the same message and no effect.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from state import lifecycle_codegen, lifecycle_table, machine
from state.lifecycle import Lifecycle
from state.machine import STATES, MachineLifecycle
from state.record import ContainerRecord
from state.store import Store

TRIGGERS = [*sorted(lifecycle_table.TRIGGERS | {t["trigger"] for t in machine.TRANSITIONS}), "no_such_trigger"]


class Recording:
    """Logs each callback, in order, then does what the real one does."""

    calls: list[str]

    def _mark_started(self, event: Any) -> None:
        self.calls.append("_mark_started")
        super()._mark_started(event)  # type: ignore[misc]

    def _mark_finished(self, event: Any) -> None:
        self.calls.append(f"_mark_finished {event.kwargs}")
        super()._mark_finished(event)  # type: ignore[misc]

    def _persist(self, event: Any) -> None:
        self.calls.append("_persist")
        super()._persist(event)  # type: ignore[misc]


class RecordingTable(Recording, Lifecycle):
    pass


class RecordingMachine(Recording, MachineLifecycle):
    pass


def fire(kind: type[Lifecycle], root: Path, state: str, trigger: str) -> dict[str, Any]:
    """What firing `trigger` on a container in `state` does, as far as anyone can observe."""
    store = Store(str(root))
    (root / "c1").mkdir(parents=True)
    record = ContainerRecord(id="c1", bundle="/b", status=state, pid=os.getpid())
    life = kind(record, store)
    life.calls = []  # type: ignore[attr-defined]
    kwargs = {"exit_status": 3} if trigger == "stop" else {}
    try:
        life.fire(trigger, **kwargs)
        error = None
    except Exception as e:  # the comparison is the point: whatever it raises, both must raise it alike
        error = (type(e).__name__, str(e))
    state_file = root / "c1" / "state.json"
    saved = json.loads(state_file.read_text()) if state_file.exists() else None
    if saved is not None:
        for key in ("created", "started", "finished"):  # timestamps: whether set, not when
            saved[key] = saved[key] is not None
    return {
        "error": error,
        "state": life.state,
        "status": record.status,
        "calls": life.calls,  # type: ignore[attr-defined]
        "saved": saved,
        "exit_status": record.exit_status,
        "started": record.started is not None,
        "finished": record.finished is not None,
    }


@pytest.mark.parametrize("trigger", TRIGGERS)
@pytest.mark.parametrize("state", STATES)
def test_table_and_machine_agree(tmp_path: Path, state: str, trigger: str) -> None:
    by_table = fire(RecordingTable, tmp_path / "table", state, trigger)
    by_machine = fire(RecordingMachine, tmp_path / "machine", state, trigger)
    assert by_table == by_machine


def test_the_pairs_cover_both_outcomes(tmp_path: Path) -> None:
    # A comparison that only ever saw errors would prove little.
    outcomes = [fire(RecordingTable, tmp_path / f"{s}-{t}", s, t)["error"] is None for s in STATES for t in TRIGGERS]
    assert sum(outcomes) == len(lifecycle_table.TABLE) == 9
    assert len(outcomes) - sum(outcomes) > 30


def test_table_is_not_stale() -> None:
    assert lifecycle_codegen.definition_hash() == lifecycle_table.DEFINITION_HASH, "run `python -m engine.generate`"
    assert Path(lifecycle_codegen.TABLE_FILE).read_text() == lifecycle_codegen.render_table()


def test_a_changed_machine_makes_the_table_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"trigger": "unpause_stopped", "source": "stopped", "dest": "running"}
    monkeypatch.setattr(machine, "TRANSITIONS", [*machine.TRANSITIONS, extra])
    assert lifecycle_codegen.definition_hash() != lifecycle_table.DEFINITION_HASH
    assert lifecycle_codegen.render_table() != Path(lifecycle_codegen.TABLE_FILE).read_text()


@pytest.mark.parametrize(
    "extra",
    [
        {"trigger": "start", "source": "stopped", "dest": "running", "conditions": "_is_ok"},
        {"trigger": "start", "source": "stopped", "dest": "running", "prepare": "_get_ready"},
        {"trigger": "tick", "source": "running", "dest": None},
    ],
    ids=["conditions", "prepare", "internal"],
)
def test_what_the_table_cannot_do_is_refused(monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any]) -> None:
    monkeypatch.setattr(machine, "TRANSITIONS", [*machine.TRANSITIONS, extra])
    with pytest.raises(lifecycle_codegen.TableError):
        lifecycle_codegen.compile_table()


def test_machine_options_the_table_cannot_do_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "MACHINE_OPTIONS", {**machine.MACHINE_OPTIONS, "before_state_change": "_check"})
    with pytest.raises(lifecycle_codegen.TableError, match="before_state_change"):
        lifecycle_codegen.compile_table()
