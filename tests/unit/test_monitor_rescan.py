"""state.monitor.Monitor: a poke naming its container looks at that container only; any other poke rescans the
root, where a neighbour's state.json that has not changed since the monitor found nothing to watch in it is not
read again (no root needed: a real Store in tmp_path, real sockets, a `sleep` standing for an init)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from state import process
from state.monitor import MAX_POKE, MONITOR_SOCKET, Monitor
from state.record import ContainerRecord
from state.store import Store


def _save(store: Store, container_id: str, status: str) -> None:
    me = os.getpid()
    os.makedirs(store.path(container_id), exist_ok=True)
    record = ContainerRecord(
        id=container_id,
        bundle="/b",
        status=status,
        creator_pid=me,
        creator_start_time=process.start_time(me),
    )
    store.save(record)


def test_an_unchanged_creating_or_stopped_container_is_not_reloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(str(tmp_path))
    _save(store, "creating-one", "creating")
    _save(store, "stopped-one", "stopped")
    loads: list[str] = []
    real_load = store.load

    def counting_load(container_id: str, dir_fd: int | None = None) -> ContainerRecord:
        loads.append(container_id)
        return real_load(container_id, dir_fd)

    monkeypatch.setattr(store, "load", counting_load)
    server, other = socket.socketpair()
    try:
        monitor = Monitor(store, server)
        monitor.rescan()
        assert sorted(loads) == ["creating-one", "stopped-one"]
        monitor.rescan()
        monitor.rescan()
        assert sorted(loads) == ["creating-one", "stopped-one"], "unchanged state.json files were read again"
        # A new state.json (every write is a rename) is read at the next poke.
        _save(store, "creating-one", "stopped")
        monitor.rescan()
        assert sorted(loads) == ["creating-one", "creating-one", "stopped-one"]
        assert monitor.by_id == {}
    finally:
        server.close()
        other.close()


# ---- named pokes: create says which container it made, and the monitor looks at that one only -------------------


def _save_running(store: Store, container_id: str, pid: int) -> None:
    me = os.getpid()
    os.makedirs(store.path(container_id), exist_ok=True)
    record = ContainerRecord(
        id=container_id,
        bundle="/b",
        status="running",
        pid=pid,
        pid_start_time=process.start_time(pid),
        creator_pid=me,
        creator_start_time=process.start_time(me),
    )
    store.save(record)


@pytest.fixture
def sleeper() -> Iterator[int]:
    """A live process to stand for a container's init (no root: the monitor only needs a pidfd on it)."""
    child = subprocess.Popen(["sleep", "60"])
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[tuple[Store, socket.socket, str]]:
    """A root and the monitor's listening socket in it, as _claim makes them."""
    root = tmp_path / "root"
    root.mkdir()
    path = str(root / MONITOR_SOCKET)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    try:
        yield Store(str(root)), server, path
    finally:
        server.close()


def _poke(path: str, message: bytes | None) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        if message is not None:
            sock.sendall(message)


def _drain(monitor: Monitor) -> None:
    """Handle what is ready until the monitor has no poke left to read."""
    monitor.step(1.0)
    while monitor.pokes:
        monitor.step(1.0)


def _counting_ids(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    listings: list[int] = []
    real_ids = store.ids

    def ids() -> list[str]:
        listings.append(1)
        return real_ids()

    monkeypatch.setattr(store, "ids", ids)
    return listings


def test_a_named_poke_watches_its_container_without_listing_the_root(
    listening: tuple[Store, socket.socket, str], sleeper: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, server, path = listening
    for n in range(20):  # neighbours the monitor already knows
        _save(store, f"stopped-{n}", "stopped")
    monitor = Monitor(store, server)
    monitor.rescan()
    listings = _counting_ids(store, monkeypatch)
    loads: list[str] = []
    real_load = store.load
    monkeypatch.setattr(store, "load", lambda cid, dir_fd=None: loads.append(cid) or real_load(cid, dir_fd))
    _save_running(store, "new-one", sleeper)
    _poke(path, b"new-one")
    _drain(monitor)
    assert "new-one" in monitor.by_id
    assert listings == [], "a poke that names its container listed the whole root"
    assert loads == ["new-one"], "a poke that names its container read other containers' state"


def test_an_empty_poke_rescans_the_whole_root(
    listening: tuple[Store, socket.socket, str], sleeper: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An older engine's create connects and closes; a poker whose send failed says nothing either. Either way the
    # monitor cannot tell what changed, so it looks at everything.
    store, server, path = listening
    monitor = Monitor(store, server)
    monitor.rescan()
    _save_running(store, "unnamed", sleeper)
    listings = _counting_ids(store, monkeypatch)
    _poke(path, None)
    _drain(monitor)
    assert listings == [1]
    assert "unnamed" in monitor.by_id


@pytest.mark.parametrize("message", [b"../escape", b"\xff\xfe", b"x" * (MAX_POKE + 1)], ids=["path", "bytes", "long"])
def test_a_poke_that_names_no_valid_id_rescans(
    listening: tuple[Store, socket.socket, str], sleeper: int, message: bytes
) -> None:
    store, server, path = listening
    monitor = Monitor(store, server)
    monitor.rescan()
    _save_running(store, "real-one", sleeper)
    _poke(path, message)
    _drain(monitor)
    assert "real-one" in monitor.by_id
    assert monitor.pokes == {}, "the poke's connection was left open"


def test_a_named_poke_of_a_container_already_exited_records_it_stopped(
    listening: tuple[Store, socket.socket, str],
) -> None:
    store, server, path = listening
    monitor = Monitor(store, server)
    gone = subprocess.Popen(["true"])
    start_time = process.start_time(gone.pid)
    gone.wait()
    _save_running(store, "quick", os.getpid())
    record = store.load("quick")
    record.pid, record.pid_start_time = gone.pid, start_time
    store.save(record)
    _poke(path, b"quick")
    _drain(monitor)
    assert store.load("quick").status == "stopped"
    assert monitor.by_id == {}


def test_named_pokes_of_deleted_containers_leave_no_entries_behind(
    listening: tuple[Store, socket.socket, str],
) -> None:
    # A poke that finds its container stopped remembers that state.json (to skip it in later rescans); with named
    # pokes no rescan prunes those, so the monitor forgets deleted ones itself, or it grows with every container.
    store, server, path = listening
    monitor = Monitor(store, server)
    for n in range(300):
        _save(store, f"short-{n}", "stopped")
        _poke(path, f"short-{n}".encode())
        _drain(monitor)
        store.remove(f"short-{n}")
    assert len(monitor.unwatched) < 100
