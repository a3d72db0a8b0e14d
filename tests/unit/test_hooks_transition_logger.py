"""hooks.transition_logger: run as a real hook (python -m, empty environment but PYTHONPATH), one line a run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hooks.runner import HookError, run_hooks
from hooks.transition_logger import parse_args

REPO = Path(__file__).resolve().parents[2]


def logger_hook(log: Path, *extra: str, env: tuple[str, ...] = ()) -> dict:
    return {
        "path": sys.executable,
        "args": ["python3", "-m", "hooks.transition_logger", "--log", str(log), *extra],
        "env": [f"PYTHONPATH={REPO}", *env],
        "timeout": 10,
    }


def state(status: str, pid: int) -> bytes:
    return json.dumps({"ociVersion": "1.3.0", "id": "c1", "status": status, "pid": pid, "bundle": "/b"}).encode()


def test_one_json_line_per_transition(tmp_path: Path) -> None:
    log = tmp_path / "transitions.jsonl"
    run_hooks(
        "createRuntime",
        [logger_hook(log, "--stage", "createRuntime")],
        state("creating", 41),
        warn_only=False,
        warn=pytest.fail,
    )
    run_hooks(
        "poststart", [logger_hook(log, "--stage=poststart")], state("running", 41), warn_only=False, warn=pytest.fail
    )
    run_hooks(
        "poststop",
        [logger_hook(log, env=("ENGINE_HOOK_STAGE=poststop",))],
        state("stopped", 0),
        warn_only=False,
        warn=pytest.fail,
    )
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["stage"], e["id"], e["status"], e["pid"]) for e in lines] == [
        ("createRuntime", "c1", "creating", 41),
        ("poststart", "c1", "running", 41),
        ("poststop", "c1", "stopped", 0),
    ]
    assert all(e["time"].endswith("Z") and "T" in e["time"] for e in lines)
    assert sorted(lines[0]) == ["id", "pid", "stage", "status", "time"]


def test_failures_are_hook_errors_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(HookError, match=r"exited with status 1; output: transition_logger: --log is required"):
        run_hooks(
            "poststart",
            [{**logger_hook(tmp_path / "x"), "args": ["python3", "-m", "hooks.transition_logger"]}],
            state("running", 1),
            warn_only=False,
            warn=pytest.fail,
        )
    unwritable = tmp_path / "no-such-dir" / "log"
    with pytest.raises(HookError, match="No such file or directory"):
        run_hooks("poststart", [logger_hook(unwritable)], state("running", 1), warn_only=False, warn=pytest.fail)


def test_parse_args(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGINE_HOOK_STAGE", raising=False)
    assert parse_args(["--log", "/l"]) == ("/l", "unknown")
    assert parse_args(["--log=/l", "--stage", "poststop"]) == ("/l", "poststop")
    monkeypatch.setenv("ENGINE_HOOK_STAGE", "prestart")
    assert parse_args(["--log", "/l"]) == ("/l", "prestart")
    for bad in (["--log"], ["--stage", "x"], ["--verbose"], []):
        with pytest.raises(ValueError, match=r"usage: python -m hooks\.transition_logger"):
            parse_args(bad)
