"""hooks.runner's cwd: the hook runs in the directory it is given (runc's, chosen by engine/hookpoints.py), and
the caller stays where it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hooks.runner import HookError, run_hooks

STATE = b'{"ociVersion":"1.3.0","id":"c1","status":"creating","pid":42,"bundle":"/b"}'


def pwd_hook(out: Path) -> dict:
    return {"path": "/bin/sh", "args": ["sh", "-c", f"pwd >> {out}; touch ./made-here"]}


def test_hooks_run_in_the_given_directory(tmp_path: Path) -> None:
    where = tmp_path / "bundle"
    where.mkdir()
    out = tmp_path / "pwd"
    before = os.getcwd()
    run_hooks("createRuntime", [pwd_hook(out)] * 2, STATE, warn_only=False, warn=print, cwd=str(where))
    assert out.read_text().splitlines() == [str(where)] * 2
    assert (where / "made-here").exists()  # a relative path in a hook lands there
    assert os.getcwd() == before


def test_without_a_directory_hooks_run_in_ours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "pwd"
    run_hooks("poststop", [pwd_hook(out)], STATE, warn_only=False, warn=print)
    assert out.read_text().splitlines() == [str(tmp_path)]


def test_a_missing_directory_fails_the_hook_and_keeps_ours(tmp_path: Path) -> None:
    before = os.getcwd()
    with pytest.raises(HookError, match=r"^prestart hook\[0\] /bin/sh: cannot enter its working directory .*/gone"):
        run_hooks(
            "prestart", [pwd_hook(tmp_path / "pwd")], STATE, warn_only=False, warn=print, cwd=str(tmp_path / "gone")
        )
    assert os.getcwd() == before and not (tmp_path / "pwd").exists()
