"""--pid-file (create, run, exec): the host pid of the container's init or of exec's process, for supervisors."""

from __future__ import annotations

import os

from engine.errors import EngineError
from state.store import write_file_atomically


def write_pid_file(path: str, pid: int, error: type[EngineError] = EngineError) -> None:
    """The pid, written atomically (a reader never sees a half-written file). Raises `error` naming the file."""
    try:
        write_file_atomically(path, str(pid).encode())
    except OSError as err:
        raise error(f"--pid-file {os.path.abspath(path)}: {err.strerror}") from None
