"""engine ps's table: the host's ps output, header first, only the container's pids (as runc's ps)."""

from __future__ import annotations

import pytest

from engine.commands.ps import filter_table
from engine.errors import EngineError

PS_EF = """\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root         120       1  0 10:01 ?        00:00:00 engine init c1
root         121     120  0 10:01 ?        00:00:00 sleep 120 1 121
root        1200       1  0 10:01 ?        00:00:00 sleep 12
"""


def test_keeps_the_header_and_the_containers_lines() -> None:
    lines = PS_EF.splitlines()
    assert filter_table(PS_EF, {120, 121}) == [lines[0], lines[2], lines[3]]
    assert filter_table(PS_EF, set()) == [lines[0]]


def test_the_pid_column_is_found_in_any_position() -> None:
    out = "COMMAND  PID\nsleep    7\nsh       8\n"
    assert filter_table(out, {8}) == ["COMMAND  PID", "sh       8"]


@pytest.mark.parametrize(
    ("output", "message"),
    [("", "printed nothing"), ("COMMAND\nsleep\n", "no PID column"), ("PID CMD\nxx sleep\n", "cannot read a pid")],
)
def test_unusable_output_is_a_clear_error(output: str, message: str) -> None:
    with pytest.raises(EngineError, match=message):
        filter_table(output, {1})
