"""engine.cli.main turns the cyclic garbage collector off for create and run (short-lived, allocating: their
imports and validation would only feed it), restores it when main returns, and leaves it alone for the others."""

from __future__ import annotations

import gc
import sys
import types
from pathlib import Path

import pytest

from engine import cli


def _fake_command(monkeypatch: pytest.MonkeyPatch, name: str) -> list[bool]:
    seen: list[bool] = []
    module = cli.command_module(name)
    fake = types.ModuleType(module)

    def run(ctx: object, args: object) -> int:
        seen.append(gc.isenabled())
        return 0

    fake.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module, fake)
    return seen


@pytest.mark.parametrize(
    ("argv", "collecting"),
    [
        (["create", "--bundle", "b", "c1"], False),
        (["run", "--bundle", "b", "c1"], False),
        (["state", "c1"], True),
        (["delete", "c1"], True),
    ],
)
def test_the_collector_is_off_only_while_create_or_run_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], collecting: bool
) -> None:
    assert gc.isenabled()
    seen = _fake_command(monkeypatch, argv[0])
    assert cli.main(["--root", str(tmp_path), *argv]) == 0
    assert seen == [collecting]
    assert gc.isenabled(), "main() left the collector off for the process that called it"
