"""The hand-parsed fast path for hot commands must give exactly what argparse gives, or defer to argparse."""

from __future__ import annotations

import pytest

from engine.cli import build_parser, parse_hot

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
    ["--systemd-cgroup", "state", "c"],  # podman with the systemd cgroup manager passes it to every command
    ["--root", "/r", "--systemd-cgroup", "kill", "--all", "c", "KILL"],
]


@pytest.mark.parametrize("argv", SAME, ids=" ".join)
def test_fast_path_matches_argparse(argv: list[str]) -> None:
    fast = parse_hot(argv)
    assert fast is not None
    slow = build_parser().parse_args(argv)
    for key, value in vars(fast).items():
        assert getattr(slow, key) == value, key


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["state"],
        ["--help"],
        ["state", "--help"],
        ["kill", "--bogus", "c1"],
        ["create", "c1"],
        ["--root"],
        ["--log-format", "xml", "state", "c1"],
        ["state", "a", "b"],
        ["--systemd-cgroup=1", "state", "c"],
    ],
    ids=" ".join,
)
def test_anything_unusual_goes_to_argparse(argv: list[str]) -> None:
    assert parse_hot(argv) is None
