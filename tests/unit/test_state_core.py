"""Unit tests for the lifecycle core: ids, signals, the store, the machine, liveness (no root needed)."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ContainerNotFound, EngineError, InvalidState
from engine.signals import parse_signal
from state import process
from state.ids import MAX_ID_LENGTH, InvalidId, validate_id
from state.lifecycle import Lifecycle
from state.record import ContainerRecord
from state.rules import require_deletable, require_killable, require_startable
from state.store import ContainerExists, Store


@pytest.mark.parametrize("good", ["a", "abc-1.2_3+x", "x" * MAX_ID_LENGTH, "..a"])
def test_valid_ids(good: str) -> None:
    assert validate_id(good) == good


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "/abs", "a b", "x" * (MAX_ID_LENGTH + 1), "a\0b", "é"])
def test_invalid_ids(bad: str) -> None:
    with pytest.raises(InvalidId):
        validate_id(bad)


@given(st.text(max_size=40))
def test_an_accepted_id_never_names_another_directory(text: str) -> None:
    try:
        validate_id(text)
    except InvalidId:
        return
    assert "/" not in text and text not in (".", "..") and os.path.basename(text) == text


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("KILL", 9),
        ("SIGKILL", 9),
        ("9", 9),
        ("0", 0),  # runc sends signal 0: "is it alive?"
        ("term", 15),
        ("SIGUSR1", 10),
        ("RTMIN+2", signal.SIGRTMIN + 2),
        ("SIGRTMAX-1", signal.SIGRTMAX - 1),
    ],
)
def test_signals(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("bad", ["NOPE", "65", "-1", "RTMIN+99", ""])
def test_bad_signals(bad: str) -> None:
    with pytest.raises(EngineError, match="signal"):
        parse_signal(bad)


def test_rules_follow_runtime_md() -> None:
    require_startable("c", "created")
    for status in ("creating", "running", "stopped", "paused"):
        with pytest.raises(InvalidState):
            require_startable("c", status)
    for status in ("created", "running"):
        require_killable("c", status)
    for status in ("creating", "stopped"):
        with pytest.raises(InvalidState):
            require_killable("c", status)
    require_deletable("c", "stopped", force=False)
    require_deletable("c", "running", force=True)
    with pytest.raises(InvalidState):
        require_deletable("c", "running", force=False)


def new_container(store: Store, container_id: str = "c1") -> Lifecycle:
    with store.reserve(container_id):
        record = ContainerRecord(
            id=container_id, bundle="/b", creator_pid=os.getpid(), creator_start_time=process.start_time(os.getpid())
        )
        life = Lifecycle.new(record, store)
        life.fire("begin_create")
    return life


def test_every_transition_writes_state_json(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    life = new_container(store)
    assert json.loads((tmp_path / "c1" / "state.json").read_text())["status"] == "creating"
    life.record.pid, life.record.pid_start_time = os.getpid(), process.start_time(os.getpid())
    for trigger, status in [
        ("finish_create", "created"),
        ("start", "running"),
        ("pause", "paused"),
        ("resume", "running"),
        ("stop", "stopped"),
    ]:
        life.fire(trigger)
        assert store.load("c1").status == status
    record = store.load("c1")
    assert record.started and record.finished


def test_a_disallowed_transition_has_no_effect(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    life = new_container(store)
    before = (tmp_path / "c1" / "state.json").read_bytes()
    with pytest.raises(InvalidState, match="cannot start while creating"):
        life.fire("start")
    assert (tmp_path / "c1" / "state.json").read_bytes() == before
    assert life.state == "creating"


def test_stop_records_the_exit_status(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    life = new_container(store)
    life.fire("stop", exit_status=3)
    assert store.load("c1").exit_status == 3


def test_concurrent_reserve_gives_exactly_one(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    results: list[str] = []
    barrier = threading.Barrier(16)

    def claim() -> None:
        barrier.wait()
        try:
            with store.reserve("same"):
                results.append("won")
        except ContainerExists:
            results.append("lost")

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("won") == 1 and results.count("lost") == 15


def test_unknown_and_removed_containers(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    with pytest.raises(ContainerNotFound):
        store.load("nope")
    with pytest.raises(ContainerNotFound), store.locked("nope"):
        pass
    new_container(store, "gone")
    store.remove("gone")
    assert not (tmp_path / "gone").exists()
    with pytest.raises(ContainerNotFound):
        store.load("gone")


def test_a_command_that_waited_for_the_lock_finds_the_container_deleted(tmp_path: Path) -> None:
    # The lock takes no stat of state.json (state/store.py): the load every caller does next says it is gone.
    store = Store(str(tmp_path))
    new_container(store, "c1")
    outcome: list[object] = []
    with store.locked("c1"):

        def waiter() -> None:
            try:
                with store.locked("c1") as dir_fd:
                    outcome.append(store.load("c1", dir_fd))
            except ContainerNotFound as err:
                outcome.append(err)

        thread = threading.Thread(target=waiter)
        thread.start()
        thread.join(0.2)  # it waits on the flock
        assert thread.is_alive() and not outcome
        store.remove("c1")
    thread.join(5)
    assert len(outcome) == 1 and isinstance(outcome[0], ContainerNotFound), outcome
    assert "c1" in str(outcome[0])


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    life = new_container(store)
    for _ in range(5):
        if life.state != "stopped":
            life.fire("stop")
    assert sorted(os.listdir(tmp_path / "c1")) == ["events.jsonl", "state.json"]
    # The log (for `engine events`) holds every record state.json held, in order, the last one being it.
    log = (tmp_path / "c1" / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in log] == ["creating", "stopped"]
    assert json.loads(log[-1]) == json.loads((tmp_path / "c1" / "state.json").read_text())


def test_a_transition_flushes_nothing_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every create writes four files and every start, pause or stop one: an fsync each costs 2-5 ms on a disk
    # (this machine's /run), for a durability nothing needs (state/store.py write_atomically says why).
    def refuse(fd: int) -> None:
        raise AssertionError("fsync on a state transition")

    monkeypatch.setattr(os, "fsync", refuse)
    store = Store(str(tmp_path))
    life = new_container(store)
    life.record.pid, life.record.pid_start_time = os.getpid(), process.start_time(os.getpid())
    life.fire("finish_create")
    life.fire("start")
    assert store.load("c1").status == "running"


def test_a_reused_pid_is_not_our_container() -> None:
    me = os.getpid()
    record = ContainerRecord(id="c", bundle="/b", status="running", pid=me, pid_start_time=process.start_time(me))
    assert record.observed_status() == "running"
    record.pid_start_time = (record.pid_start_time or 0) + 1  # same pid, another process's start time
    assert record.observed_status() == "stopped"
    record.pid = 0
    assert record.observed_status() == "stopped"


def test_a_dead_creator_means_stopped() -> None:
    record = ContainerRecord(
        id="c",
        bundle="/b",
        status="creating",
        creator_pid=os.getpid(),
        creator_start_time=process.start_time(os.getpid()),
    )
    assert record.observed_status() == "creating"
    record.creator_start_time = 1
    assert record.observed_status() == "stopped"


def test_public_state_has_the_spec_fields() -> None:
    record = ContainerRecord(id="c", bundle="/b", status="stopped", pid=42, annotations={"k": "v"})
    state = record.public_state()
    assert state["pid"] == 0 and state["status"] == "stopped"
    assert {"ociVersion", "id", "status", "bundle", "annotations"} <= set(state)
    assert "pid_start_time" not in state and "creator_pid" not in state
