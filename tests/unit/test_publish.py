"""state.publish: one JSON line per connection; never raises, never blocks past its timeout."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from state.publish import listen, publish


def message(i: int, status: str = "running") -> dict:
    return {
        "ociVersion": "1.3.0",
        "id": "c1",
        "status": status,
        "pid": 1000 + i,
        "bundle": "/bundles/c1",
        "annotations": {"seq": str(i), "note": "naïve ✓"},
        "createdAt": "2026-11-27T10:00:00.000000Z",
    }


class Collector:
    """A reference listener iterated in a thread, collecting what it receives."""

    def __init__(self, path: str) -> None:
        self.listener = listen(path)
        self.received: list[dict] = []
        self.thread = threading.Thread(target=lambda: self.received.extend(self.listener), daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.received

    def close(self) -> None:
        self.listener.stop()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def sock_path(tmp_path: Path) -> str:
    return str(tmp_path / "sync.sock")


def test_a_listener_receives_every_message_in_order(sock_path: str) -> None:
    collector = Collector(sock_path)
    warnings: list[str] = []
    try:
        sent = [message(i, status) for i, status in enumerate(["creating", "created", "running", "stopped"] * 5)]
        for m in sent:
            assert publish(sock_path, m, warn=warnings.append) is True
        assert collector.wait_for(len(sent)) == sent
    finally:
        collector.close()
    assert warnings == []
    assert not os.path.exists(sock_path)  # close() removes the socket file


def test_the_bytes_on_the_wire_are_one_json_line(sock_path: str) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    try:
        assert publish(sock_path, {"id": "c1", "status": "created"}, warn=pytest.fail)
        conn, _ = server.accept()
        with conn:
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
    finally:
        server.close()
    assert data == b'{"id":"c1","status":"created"}\n'


def test_absent_socket_returns_false_at_once_and_warns(sock_path: str) -> None:
    warnings: list[str] = []
    start = time.monotonic()
    assert publish(sock_path, message(0), warn=warnings.append) is False
    assert time.monotonic() - start < 0.05
    assert warnings == [f"sync socket {sock_path}: cannot connect: No such file or directory; message dropped"]


def test_stale_socket_file_and_non_socket_return_false_at_once(sock_path: str, tmp_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock_path)
    stale.close()  # the file stays, nobody listens
    warnings: list[str] = []
    start = time.monotonic()
    assert publish(sock_path, message(0), warn=warnings.append) is False
    plain = tmp_path / "plain"
    plain.write_text("")
    assert publish(str(plain), message(0), warn=warnings.append) is False
    assert time.monotonic() - start < 0.05
    assert [w.split(": ", 1)[1] for w in warnings] == ["cannot connect: Connection refused; message dropped"] * 2


def test_a_listener_that_never_accepts_costs_at_most_the_timeout(sock_path: str) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(0)  # never accepted: the backlog fills after a connection or two
    warnings: list[str] = []
    durations = []
    try:
        for i in range(10):
            start = time.monotonic()
            ok = publish(sock_path, message(i), timeout=0.3, warn=warnings.append)
            durations.append(time.monotonic() - start)
            if not ok:
                break
    finally:
        server.close()
    assert not ok, "the backlog never filled"
    assert max(durations) < 0.3 + 0.15, durations
    assert durations[-1] >= 0.29, durations  # it did wait for the backlog, up to the timeout
    assert warnings == [f"sync socket {sock_path}: connect timed out after 0.3s; message dropped"]


def test_a_listener_that_accepts_but_never_reads_costs_at_most_the_timeout(sock_path: str) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(8)
    accepted: list[socket.socket] = []
    acceptor = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    acceptor.start()
    huge = {"id": "c1", "status": "running", "annotations": {"blob": "x" * (8 << 20)}}  # > socket buffers
    warnings: list[str] = []
    try:
        start = time.monotonic()
        assert publish(sock_path, huge, timeout=0.3, warn=warnings.append) is False
        elapsed = time.monotonic() - start
    finally:
        acceptor.join(2)
        for conn in accepted:
            conn.close()
        server.close()
    assert 0.29 <= elapsed < 0.45, elapsed
    assert warnings == [f"sync socket {sock_path}: send timed out after 0.3s; message dropped"]


def test_a_peer_that_hangs_up_is_a_warning_not_a_signal(sock_path: str) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(8)

    def hang_up() -> None:
        conn, _ = server.accept()
        conn.close()

    closer = threading.Thread(target=hang_up, daemon=True)
    closer.start()
    warnings: list[str] = []
    try:
        big = {"blob": "x" * (8 << 20)}
        assert publish(sock_path, big, timeout=2, warn=warnings.append) is False
    finally:
        closer.join(2)
        server.close()
    assert len(warnings) == 1
    assert "cannot send" in warnings[0]


def test_an_unencodable_message_warns_and_returns_false(sock_path: str) -> None:
    warnings: list[str] = []
    assert publish(sock_path, {"pid": {1, 2}}, warn=warnings.append) is False
    assert warnings[0].startswith(f"sync socket {sock_path}: cannot encode the message: ")


def test_socket_paths_longer_than_sun_path(tmp_path: Path) -> None:
    directory = tmp_path / ("d" * 100) / ("e" * 40)
    directory.mkdir(parents=True)
    path = str(directory / "sync.sock")
    assert len(path) > 108
    collector = Collector(path)
    try:
        assert publish(path, message(7), warn=pytest.fail)
        assert collector.wait_for(1) == [message(7)]
    finally:
        collector.close()


def test_the_listener_drops_a_cut_short_line_and_non_objects(sock_path: str) -> None:
    collector = Collector(sock_path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(sock_path)
            client.sendall(b'{"a":1}\n[1,2]\nnot json\n{"b":2}\n{"cut":')
        assert publish(sock_path, {"after": True}, warn=pytest.fail)
        assert collector.wait_for(3) == [{"a": 1}, {"b": 2}, {"after": True}]
    finally:
        collector.close()


def test_the_listener_replaces_a_stale_socket_and_sets_the_mode(sock_path: str) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock_path)
    stale.close()
    with listen(sock_path, mode=0o660) as listener:
        assert os.stat(sock_path).st_mode & 0o777 == 0o660
        assert publish(sock_path, {"x": 1}, warn=pytest.fail)
        assert next(listener) == {"x": 1}
