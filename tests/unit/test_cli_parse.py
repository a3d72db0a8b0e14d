"""The hand-parsed fast path must give exactly what argparse gives, or defer to argparse."""

from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cli import _FAST, build_parser, parse_fast

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
]


def by_argparse(argv: list[str]) -> dict[str, object] | None:
    """argparse's namespace as a dict, or None where it refuses (it exits)."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return vars(build_parser().parse_args(argv))
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
        ["--systemd-cgroup", "state", "c"],
        ["list", "--format", "xml"],
        ["list", "-fq"],
        ["create", "--preserve-fds", "x", "c1"],
        ["create", "--bund", "/b", "c1"],
        ["create", "--", "c1"],
        ["kill", "c1", "-9"],
        ["exec", "c1", "true"],
    ],
    ids=" ".join,
)
def test_anything_unusual_goes_to_argparse(argv: list[str]) -> None:
    assert parse_fast(argv) is None


def tokens_for(command: str) -> list[str]:
    flags = list(_FAST[command][0])
    return [*flags, *(f"{f}=" for f in flags if f.startswith("--")), "c1", "c2", "/b", "3", "-3", "json", "", "-", "--"]


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(sorted(_FAST)))
    global_flags = ["--root", "/r", "--root=/r", "--debug", "--log-format", "json", "--log=/l"]
    globals_ = draw(st.lists(st.sampled_from(global_flags), max_size=3))
    rest = draw(st.lists(st.sampled_from(tokens_for(command)) | st.text(max_size=3), max_size=6))
    return [*globals_, command, *rest]


@settings(max_examples=1500, deadline=None)
@given(argv=command_lines())
def test_fast_path_never_differs_from_argparse(argv: list[str]) -> None:
    fast = parse_fast(argv)
    if fast is not None:
        assert vars(fast) == by_argparse(argv), argv
