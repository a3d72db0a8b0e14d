"""The fast command-line parser gives exactly what argparse gives, or defers to argparse; its table is current."""

from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import cli_codegen, cli_table
from engine.cli import parse_fast
from engine.cli_parser import build_parser

SAME = [
    ["state", "c1"],
    ["--root", "/r", "state", "c1"],
    ["--root=/r", "--log", "/l", "--log-format", "json", "start", "c1"],
    ["--debug", "kill", "c1"],
    ["kill", "c1", "KILL"],
    ["kill", "--all", "c1", "9"],
    ["kill", "c1", "-a"],
    ["delete", "c1"],
    ["delete", "--force", "c1"],
    ["--log-format=text", "delete", "-f", "c1"],
    ["list"],
    ["list", "--format", "json"],
    ["list", "-q", "-f", "json"],
    ["--root", "/r", "list", "--format=table", "--quiet"],
    ["ps", "--format", "json", "c1"],
    ["pause", "c1"],
    ["resume", "c1"],
    ["create", "--bundle", "/b", "--pid-file", "/p", "c1"],
    ["create", "c1", "-b", "/b", "--console-socket=/s", "--no-pivot", "--preserve-fds", "2", "--sync-socket", "/y"],
    ["--root", "/r", "run", "-d", "--bundle", "/b", "--keep", "c1"],
    ["run", "--no-new-keyring", "c1", "--detach"],
    ["--hooks-dir", "/h1", "--hooks-dir=/h2", "update", "--memory", "1048576", "-r", "/res.json", "c1"],
    ["events", "--follow", "c1"],
    ["events"],
    ["features"],
    ["spec", "--bundle", "/b"],
    ["kill", "c1", "--all"],
    ["exec", "c1", "true"],
    ["exec", "--tty", "-e", "A=1", "--env", "B=2", "c1", "sh", "-c", "echo --tty"],
    ["exec", "--process", "/p.json", "c1"],
    ["exec", "-u", "1:1", "--cap", "CAP_KILL", "c1", "ls"],
    ["--systemd-cgroup", "state", "c"],  # podman with the systemd cgroup manager passes it to every command
    ["--root", "/r", "--systemd-cgroup", "kill", "--all", "c", "KILL"],
]


PARSER = build_parser()


def by_argparse(argv: list[str]) -> dict[str, object] | None:
    """argparse's namespace as a dict, or None where it refuses (it exits)."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return vars(PARSER.parse_args(argv))
        except SystemExit:
            return None


@pytest.mark.parametrize("argv", SAME, ids=" ".join)
def test_fast_path_matches_argparse(argv: list[str]) -> None:
    fast = parse_fast(argv)
    assert fast is not None
    assert vars(fast) == by_argparse(argv)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["state"],
        ["--help"],
        ["state", "--help"],
        ["kill", "--bogus", "c1"],
        ["create"],
        ["--root"],
        ["--log-format", "xml", "state", "c1"],
        ["state", "a", "b"],
        ["list", "--format", "xml"],
        ["list", "-fq"],
        ["create", "--preserve-fds", "x", "c1"],
        ["create", "--bund", "/b", "c1"],
        ["create", "--", "c1"],
        ["kill", "c1", "-9"],
        ["kill", "c1", "--all", "9"],  # argparse refuses: c1's run took the optional signal (as its default)
        ["exec", "c1", "--", "true"],
        ["--version", "state", "c1"],
        ["update", "-r", "-", "c1"],
        ["--systemd-cgroup=1", "state", "c"],
    ],
    ids=" ".join,
)
def test_anything_unusual_goes_to_argparse(argv: list[str]) -> None:
    assert parse_fast(argv) is None


def tokens_for(command: str) -> list[str]:
    flags = list(cli_table.COMMANDS[command][0])
    return [*flags, *(f"{f}=" for f in flags if f.startswith("--")), "c1", "c2", "/b", "3", "-3", "json", "", "-", "--"]


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(sorted(cli_table.COMMANDS)))
    global_flags = ["--root", "/r", "--root=/r", "--debug", "--log-format", "json", "--log=/l"]
    globals_ = draw(st.lists(st.sampled_from(global_flags), max_size=3))
    rest = draw(st.lists(st.sampled_from(tokens_for(command)) | st.text(max_size=3), max_size=6))
    return [*globals_, command, *rest]


@settings(max_examples=400, deadline=None)
@given(argv=command_lines())
def test_fast_path_never_differs_from_argparse(argv: list[str]) -> None:
    fast = parse_fast(argv)
    if fast is not None:
        assert vars(fast) == by_argparse(argv), argv


@pytest.mark.parametrize("command", sorted(cli_table.COMMANDS))
def test_every_short_command_line(command: str) -> None:
    # Exhaustively, every arrangement of up to four tokens: options before, between and after positionals.
    flags, _, _ = cli_table.COMMANDS[command]
    options = sorted(flags)[:3]
    values = ["json"] if any(kind != "true" for _, kind, _ in flags.values()) else []
    alphabet = [*options, *values, "c1", "9", "-x", "--"]
    lines = [[]] + [[t] for t in alphabet]
    for _ in range(3):
        lines = [[*line, t] for line in lines for t in alphabet if len(line) < 4] + lines
    for line in {tuple(line) for line in lines}:
        argv = [command, *line]
        fast = parse_fast(argv)
        if fast is not None:
            assert vars(fast) == by_argparse(argv), argv


def test_table_is_not_stale() -> None:
    # build_parser() is the definition; engine/cli_table.py must be what it gives now.
    assert cli_codegen.TABLE_FILE.read_text() == cli_codegen.render_table(), "run `python -m engine.generate`"


def test_every_command_is_fast() -> None:
    assert set(cli_table.COMMANDS) == set(PARSER._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
