"""state.monitor.Monitor.rescan: each poke rescans the root, but a neighbour's state.json that has not changed
since the monitor found nothing to watch in it is not read again (no root needed: a real Store in tmp_path)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from state import process
from state.monitor import Monitor
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
