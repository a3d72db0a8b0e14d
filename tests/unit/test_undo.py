"""engine/undo.py: each setup stage registers its undo; a failing create unwinds them newest first."""

from __future__ import annotations

from engine.undo import UndoStack


def test_unwinds_newest_first_and_a_failing_undo_does_not_stop_the_others() -> None:
    done: list[str] = []
    warnings: list[str] = []
    undo = UndoStack(warn=warnings.append)
    undo.push("remove the state directory", lambda: done.append("state"))
    undo.push("remove the cgroups", lambda: 1 / 0)
    undo.push("kill the init", lambda: done.append("init"))
    undo.unwind()
    assert done == ["init", "state"]
    assert warnings == ["cleanup after failed create: remove the cgroups: division by zero"]
    undo.unwind()  # nothing twice
    assert done == ["init", "state"]


def test_a_create_that_succeeded_keeps_what_it_made() -> None:
    done: list[str] = []
    undo = UndoStack()
    undo.push("remove the state directory", lambda: done.append("state"))
    undo.discard()
    undo.unwind()
    assert done == []
