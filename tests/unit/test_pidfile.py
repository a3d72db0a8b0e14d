"""engine/pidfile.py: --pid-file for create, run and exec, one writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import EngineError
from engine.pidfile import write_pid_file


class ExecLikeError(EngineError):
    pass


def test_the_pid_and_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "pid"
    target.write_text("999999 stale and longer")
    write_pid_file(str(target), 4242)
    assert target.read_text() == "4242"
    assert [p.name for p in tmp_path.iterdir()] == ["pid"]  # no temp file left beside it


def test_an_unwritable_path_is_the_callers_error_naming_the_file(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "pid"
    with pytest.raises(ExecLikeError, match=rf"^--pid-file {target}: No such file or directory$"):
        write_pid_file(str(target), 1, error=ExecLikeError)
