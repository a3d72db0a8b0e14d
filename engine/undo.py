"""Each setup stage registers its undo here; a failing create unwinds them in reverse order."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from collections.abc import Callable


class UndoStack:
    def __init__(self, warn: Callable[[str], None] | None = None) -> None:
        self._steps: list[tuple[str, Callable[[], object]]] = []
        self._warn = warn or (lambda message: None)

    def push(self, what: str, undo: Callable[[], object]) -> None:
        self._steps.append((what, undo))

    def unwind(self) -> None:
        """Run every undo, newest first; one failing undo must not stop the others."""
        while self._steps:
            what, undo = self._steps.pop()
            try:
                undo()
            except Exception as err:
                self._warn(f"cleanup after failed create: {what}: {err}")

    def discard(self) -> None:
        """Create succeeded: the container now owns these resources (delete undoes them)."""
        self._steps.clear()
