"""Fuzzing the state directory (issue #7 point 8): a truncated or garbage state.json, missing files, a symlink in
place of the container's directory. state, kill, start, exec, delete and delete --force must each end in success
or one line on stderr with a non-zero exit (never a traceback), touch nothing outside --root (a symlinked state
directory must not lead them into the directory it points at) and start nothing that outlives them.

What the fuzzer writes is fenced: every pid in a record is a process of this test's (a sleeper) or one that does not
exist, and no cgroup path is real, so kill and delete --force cannot reach anyone else's process or cgroup.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from tests.security.conftest import Runtime, leftovers
from tests.security.test_fuzz_create import fuzz_settings, json_value

NO_SUCH_PID = 4194303  # pid_max's ceiling: never a live process


def _record(container_id: str, sleeper: int, tmp: Path, live: bool) -> dict[str, Any]:
    """A plausible state.json (what engine writes), pointing at a sleeper of ours: alive (its true start time) or
    not (a start time that is not its). Never alive next to a real fifo: `start` would wait for the sleeper to
    write into it, forever, as it waits for a real init (a forged record, not a corrupt one)."""
    stat = Path(f"/proc/{sleeper}/stat").read_text()
    start = int(stat[stat.rindex(")") + 2 :].split()[19]) + (0 if live else 1)
    return {
        "id": container_id,
        "bundle": str(tmp / "bundle"),
        "status": "created",
        "pid": sleeper,
        "pid_start_time": start,
        "rootfs": str(tmp / "rootfs"),
        "annotations": {},
        "created": "2026-01-01T00:00:00Z",
        "creator_pid": NO_SUCH_PID,
        "creator_start_time": 1,
        "cgroups": {},
        "owner": "",
    }


def _fence(value: Any, sleeper: int) -> Any:
    """Every integer that could be a pid is ours or nobody's; every string path stays harmless."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if value in (sleeper, NO_SUCH_PID) or value <= 0 else NO_SUCH_PID
    if isinstance(value, str):
        return value.replace("/", "_")
    if isinstance(value, list):
        return [_fence(v, sleeper) for v in value]
    if isinstance(value, dict):
        return {k: _fence(v, sleeper) for k, v in value.items()}
    return value


FIELDS = [
    "id",
    "status",
    "pid",
    "pid_start_time",
    "bundle",
    "rootfs",
    "annotations",
    "created",
    "started",
    "finished",
    "exit_status",
    "creator_pid",
    "creator_start_time",
    "reaper_pid",
    "cgroups",
    "owner",
    "extra",
]

corruption = st.one_of(
    st.tuples(st.just("bytes"), st.binary(max_size=300)),
    st.tuples(st.just("truncated"), st.integers(min_value=0, max_value=400)),
    st.tuples(st.just("field"), st.lists(st.tuples(st.sampled_from(FIELDS), json_value), min_size=1, max_size=4)),
    st.tuples(st.just("drop"), st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3)),
    st.tuples(st.just("not an object"), json_value),
)
other_files = st.fixed_dictionaries(
    {
        "config.json": st.sampled_from([None, b"", b"{", b"[]", b'{"process": 3}', b'{"process": {"args": []}}']),
        "hooks.json": st.sampled_from([None, b"", b"{", b'{"poststop": [{"path": 3}]}', b'{"poststop": "x"}']),
        "exec.fifo": st.sampled_from([None, "file", "fifo", "dir"]),
    }
)
NO_FILES = {"config.json": None, "hooks.json": None, "exec.fifo": None}
layout = st.sampled_from(["directory", "symlink to a directory", "symlink to nowhere", "file"])


def _state_bytes(record: dict[str, Any], change: tuple, sleeper: int) -> bytes:
    kind, what = change
    valid = json.dumps(record).encode()
    if kind == "bytes":
        return what
    if kind == "truncated":
        return valid[: min(what, len(valid) - 1)]
    if kind == "drop":
        return json.dumps({k: v for k, v in record.items() if k not in what}).encode()
    if kind == "not an object":
        return json.dumps(_fence(what, sleeper)).encode()
    changed = dict(record)
    for key, value in what:
        changed[key] = _fence(value, sleeper)
    try:
        return json.dumps(changed).encode()
    except ValueError:
        return valid[:-1]


def _populate(directory: Path, state: bytes, files: dict[str, Any]) -> None:
    directory.mkdir()
    (directory / "state.json").write_bytes(state)
    for name in ("config.json", "hooks.json"):
        if files[name] is not None:
            (directory / name).write_bytes(files[name])
    fifo = files["exec.fifo"]
    if fifo == "file":
        (directory / "exec.fifo").write_text("0")
    elif fifo == "fifo":
        os.mkfifo(directory / "exec.fifo")
    elif fifo == "dir":
        (directory / "exec.fifo").mkdir()


@fuzz_settings(30)
@given(change=corruption, files=other_files, where=layout)
@example(change=("bytes", b""), files={"config.json": None, "hooks.json": None, "exec.fifo": None}, where="directory")
@example(
    change=("truncated", 40), files={"config.json": b"{", "hooks.json": b"{", "exec.fifo": "fifo"}, where="directory"
)
@example(
    change=("field", [("status", "running")]),
    files={"config.json": None, "hooks.json": None, "exec.fifo": None},
    where="symlink to a directory",
)
def test_fuzz_corrupt_state_directory(engine: Runtime, tmp_path: Path, change: tuple, files: dict, where: str) -> None:
    sleeper = subprocess.Popen(["sleep", "600"])  # the one live process a record may name (delete may kill it)
    try:
        _corrupt_and_run(engine, tmp_path, sleeper, change, files, where)
    finally:
        sleeper.kill()
        sleeper.wait()


def _corrupt_and_run(
    engine: Runtime, tmp_path: Path, sleeper: subprocess.Popen, change: tuple, files: dict, where: str
) -> None:
    container_id = engine.new_id()
    engine.root.mkdir(mode=0o700, exist_ok=True)
    live = files["exec.fifo"] != "fifo"
    state = _state_bytes(_record(container_id, sleeper.pid, tmp_path, live), change, sleeper.pid)
    entry = engine.root / container_id
    victim = tmp_path / f"victim-{container_id}"
    if where == "directory":
        _populate(entry, state, files)
    elif where == "symlink to a directory":
        _populate(victim, state, files)
        (victim / "precious").write_text("keep me")
        entry.symlink_to(victim)
    elif where == "symlink to nowhere":
        entry.symlink_to(tmp_path / "nowhere")
    else:
        entry.write_bytes(state)
    before = sorted(p.name for p in victim.iterdir()) if victim.exists() else []
    try:
        for args in (
            ("state", container_id),
            ("kill", container_id, "0"),
            ("start", container_id),
            ("exec", container_id, "true"),
            ("delete", container_id),
            ("delete", "--force", container_id),
        ):
            result = engine(*args, timeout=30)
            assert "Traceback" not in result.stderr, f"{args}: {result.stderr}"
            if result.returncode != 0:
                lines = result.stderr.strip().splitlines()
                assert len(lines) == 1, f"{args}: not one line: {result.stderr!r}"
        if victim.exists():
            assert sorted(p.name for p in victim.iterdir()) == before, "a command reached into the symlinked directory"
            assert (victim / "precious").read_text() == "keep me"
        left = leftovers(engine, tmp_path, container_id)
        left.pop("state", None)  # a corrupt entry that delete --force refused may stay (issue #8 makes it go)
        assert not left, left
    finally:
        _clean(engine.root / container_id)
        engine.ids.remove(container_id)


def _clean(entry: Path) -> None:
    """Remove what the test planted (and what delete --force refused), for the next example."""
    if entry.is_dir() and not entry.is_symlink():
        for child in entry.iterdir():
            child.rmdir() if child.is_dir() and not child.is_symlink() else child.unlink()
        entry.rmdir()
    elif entry.is_symlink() or entry.exists():
        entry.unlink()
