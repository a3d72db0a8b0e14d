"""state.monitor.ensure_running: how a command reaches the root's exit monitor (no root needed: fakes).

The monitor accepts each connection and closes it at once (the connection is the message), so whatever a poker
sends after connecting may meet a closed peer (EPIPE); a live monitor must never be taken for a missing one."""

from __future__ import annotations

import fcntl
import os
import sys
import time
import types
from pathlib import Path

import pytest

from state import monitor


class ClosedAtOnce:
    """A socket whose peer accepted and closed before anything was sent: connect works, sending does not."""

    def __init__(self, *args: object) -> None:
        self.connected = False

    def settimeout(self, timeout: float) -> None:
        pass

    def connect(self, path: str) -> None:
        self.connected = True

    def sendall(self, data: bytes) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    send = sendall

    def close(self) -> None:
        pass


def test_a_connect_reaches_a_live_monitor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("_socket")
    fake.AF_UNIX, fake.SOCK_STREAM, fake.SOCK_CLOEXEC = 1, 1, 0  # type: ignore[attr-defined]
    fake.socket = ClosedAtOnce  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "_socket", fake)

    def no_spawn(*args: object) -> None:
        raise AssertionError("a second monitor was spawned")

    monkeypatch.setattr(monitor, "_spawn", no_spawn)
    # The live monitor holds the root's lock.
    lock = os.open(tmp_path / monitor.MONITOR_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        started = time.monotonic()
        monitor.ensure_running(str(tmp_path))
        # Not the wait for a monitor on its way out (up to SPAWN_WAIT): it answered.
        assert time.monotonic() - started < monitor.SPAWN_WAIT / 2
    finally:
        os.close(lock)


def test_a_poke_names_the_container_it_is_about(tmp_path: Path) -> None:
    # create names its container, so that the monitor looks at that one instead of rescanning the whole root
    # (state.monitor.Monitor.poked); the poke ends with the poker's close.
    import socket

    path = tmp_path / monitor.MONITOR_SOCKET
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)
        lock = os.open(tmp_path / monitor.MONITOR_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            monitor.ensure_running(str(tmp_path), "c-42")
        finally:
            os.close(lock)
        conn, _ = server.accept()
        with conn:
            conn.settimeout(1)
            received = b""
            while chunk := conn.recv(4096):
                received += chunk
    assert received == b"c-42"
