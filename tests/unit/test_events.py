"""state.events.follow: a fake state root written the way the store writes it (the record appended to
events.jsonl, then state.json replaced by temp file + rename), and one written by an older engine (no log)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from state.events import follow
from state.store import EVENTS_FILE, append_line

WAIT = 5.0  # seconds to wait for an expected event
QUIET = 0.4  # seconds of silence that count as "no event"


def write_state(root: Path, cid: str, status: str, *, log: bool = True, **fields: object) -> dict:
    """What the store does: append the record to events.jsonl (the store's own helper), then write a temp file
    in the container's directory and rename it over state.json. log=False: an older engine's directory."""
    directory = root / cid
    directory.mkdir(exist_ok=True)
    state = {"ociVersion": "1.3.0", "id": cid, "status": status, **fields}
    if log:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            append_line(dir_fd, EVENTS_FILE, json.dumps(state).encode())
        finally:
            os.close(dir_fd)
    tmp = directory / f".state.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state))
    os.rename(tmp, directory / "state.json")
    return state


def delete_container(root: Path, cid: str) -> None:
    """What the store does: state.json first, then the other files, then the directory."""
    (root / cid / "state.json").unlink()
    shutil.rmtree(root / cid)


class Follower:
    """Runs follow() in a thread; events arrive on a queue."""

    def __init__(self, root: Path, container_id: str | None = None, **options: object) -> None:
        self.stop = threading.Event()
        ready = threading.Event()
        self.events: queue.Queue[dict] = queue.Queue()
        generator = follow(str(root), container_id, stop=self.stop, ready=ready, **options)  # type: ignore[arg-type]
        self.thread = threading.Thread(target=lambda: [self.events.put(e) for e in generator], daemon=True)
        self.thread.start()
        assert ready.wait(WAIT), "follow() did not start watching"

    def next(self) -> dict:
        return self.events.get(timeout=WAIT)

    def assert_quiet(self) -> None:
        try:
            event = self.events.get(timeout=QUIET)
        except queue.Empty:
            return
        pytest.fail(f"unexpected event {event}")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "run" / "engine"


@pytest.fixture
def follower(root: Path) -> Iterator[Follower]:
    f = Follower(root)
    yield f
    f.close()


def expect_state(f: Follower, cid: str, status: str, state: dict) -> None:
    event = f.next()
    assert event["type"] == "state"
    assert (event["id"], event["status"], event["state"]) == (cid, status, state)
    assert event["time"].endswith("Z")


def test_root_is_created_mode_0700(root: Path, follower: Follower) -> None:
    assert root.is_dir()
    assert root.stat().st_mode & 0o777 == 0o700


def test_a_lifecycle_through_atomic_renames(root: Path, follower: Follower) -> None:
    # The directory is created after the watch began; each status is written by temp file + rename.
    for status, fields in [
        ("creating", {}),
        ("created", {"pid": 42}),
        ("running", {"pid": 42}),
        ("stopped", {"pid": 0, "exitStatus": 0}),
    ]:
        state = write_state(root, "c1", status, **fields)
        expect_state(follower, "c1", status, state)
    delete_container(root, "c1")
    event = follower.next()
    assert (event["type"], event["id"]) == ("deleted", "c1")
    assert event["time"].endswith("Z")
    follower.assert_quiet()


def test_statuses_overwritten_before_any_look_are_all_reported(root: Path, follower: Follower) -> None:
    # The flake this log fixes: `start` wrote running and the monitor wrote stopped a millisecond later; a
    # follower reading state.json after inotify spoke saw only stopped. Here a whole burst, and the delete
    # right behind it, all land before the follower can look; every record comes out, in order.
    expect_state(follower, "c1", "creating", write_state(root, "c1", "creating"))
    written = [write_state(root, "c1", status, pid=42) for status in ("created", "running", "paused", "running")]
    written.append(write_state(root, "c1", "stopped", pid=0, exitStatus=0))
    delete_container(root, "c1")
    for state in written:
        expect_state(follower, "c1", state["status"], state)
    assert follower.next()["type"] == "deleted"
    follower.assert_quiet()


def test_a_directory_without_a_log_is_followed_through_state_json(root: Path, follower: Follower) -> None:
    for status in ("creating", "created", "running"):
        state = write_state(root, "old", status, log=False, pid=7)
        expect_state(follower, "old", status, state)
    delete_container(root, "old")
    assert follower.next()["type"] == "deleted"
    follower.assert_quiet()


def test_rewriting_the_same_content_is_not_an_event(root: Path, follower: Follower) -> None:
    state = write_state(root, "c1", "created", pid=7)
    expect_state(follower, "c1", "created", state)
    write_state(root, "c1", "created", pid=7)
    write_state(root, "c1", "created", pid=7)
    follower.assert_quiet()
    # A content change with the same status is an event (the pid, say, or an exit status).
    state = write_state(root, "c1", "created", pid=8)
    expect_state(follower, "c1", "created", state)


def test_deleted_then_created_again_under_the_same_id(root: Path, follower: Follower) -> None:
    expect_state(follower, "c1", "running", write_state(root, "c1", "running", pid=1))
    delete_container(root, "c1")
    assert follower.next()["type"] == "deleted"
    expect_state(follower, "c1", "creating", write_state(root, "c1", "creating"))


def test_only_the_followed_container(root: Path) -> None:
    f = Follower(root, "wanted")
    try:
        write_state(root, "other", "creating")
        state = write_state(root, "wanted", "creating")
        expect_state(f, "wanted", "creating", state)
        delete_container(root, "other")
        f.assert_quiet()
    finally:
        f.close()


def test_temp_files_and_hidden_entries_are_not_containers(root: Path, follower: Follower) -> None:
    (root / ".lock").mkdir()
    (root / ".lock" / "state.json").write_text('{"status": "running"}')
    directory = root / "c1"
    directory.mkdir()
    (directory / ".state.json.1.tmp").write_text('{"status": "half-written"}')
    follower.assert_quiet()


def test_emit_existing(root: Path) -> None:
    root.mkdir(parents=True)
    write_state(root, "old", "created", pid=3)
    existing = write_state(root, "old", "running", pid=3)  # only the current record, not the history
    f = Follower(root, emit_existing=True)
    try:
        expect_state(f, "old", "running", existing)
        f.assert_quiet()
    finally:
        f.close()


def test_without_emit_existing_only_changes(root: Path) -> None:
    root.mkdir(parents=True)
    write_state(root, "old", "running", pid=3)
    f = Follower(root)
    try:
        f.assert_quiet()
        expect_state(f, "old", "stopped", write_state(root, "old", "stopped", pid=0))
    finally:
        f.close()


@pytest.mark.parametrize("log", [True, False], ids=["log", "state.json only"])
def test_rescan_catches_what_inotify_did_not_report(root: Path, log: bool) -> None:
    # A write whose file stays open makes only IN_MODIFY, which is not watched (it would wake us for every
    # write): the periodic rescan finds the new line in the log (or, without a log, state.json's new size).
    f = Follower(root, rescan_interval=0.3)
    try:
        expect_state(f, "c1", "created", write_state(root, "c1", "created", log=log))
        running = {"id": "c1", "status": "running", "pid": 12345}
        fd = os.open(root / "c1" / (EVENTS_FILE if log else "state.json"), os.O_RDWR | (os.O_APPEND if log else 0))
        try:
            if log:
                os.write(fd, json.dumps(running).encode() + b"\n")
            else:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(running).encode(), 0)
            expect_state(f, "c1", "running", running)
        finally:
            os.close(fd)
        f.assert_quiet()  # the close after writing is an event, but the content is the one already reported
    finally:
        f.close()


def test_a_line_still_being_written_waits_for_its_end(root: Path, follower: Follower) -> None:
    expect_state(follower, "c1", "created", write_state(root, "c1", "created"))
    line = json.dumps({"id": "c1", "status": "running"}).encode() + b"\n"
    with open(root / "c1" / EVENTS_FILE, "ab", buffering=0) as log:
        log.write(line[:10])
    follower.assert_quiet()
    with open(root / "c1" / EVENTS_FILE, "ab", buffering=0) as log:
        log.write(line[10:])
    assert follower.next()["status"] == "running"


def test_stop_and_close_end_the_watch_thread(root: Path) -> None:
    before = threading.active_count()
    stop = threading.Event()
    generator = follow(str(root), stop=stop, tick=0.05)
    result: list[dict] = []
    consumer = threading.Thread(target=lambda: result.extend(generator))
    consumer.start()
    time.sleep(0.3)
    start = time.monotonic()
    stop.set()
    consumer.join(WAIT)
    assert not consumer.is_alive()
    assert time.monotonic() - start < 1.0
    assert result == []
    # Closing a generator that is suspended mid-stream stops the observer too.
    ready = threading.Event()
    write_state(root, "c1", "creating")
    generator = follow(str(root), ready=ready, tick=0.05)
    writer = threading.Thread(target=lambda: ready.wait(WAIT) and write_state(root, "c1", "created"))
    writer.start()
    assert next(generator)["status"] == "created"
    writer.join()
    generator.close()
    deadline = time.monotonic() + WAIT
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() == before
