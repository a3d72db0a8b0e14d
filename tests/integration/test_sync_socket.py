"""--sync-socket: a supervisor listening on a unix socket receives every transition of a container, in order,
with the state plus createdAt/startedAt/finishedAt and the exit status when known (docs/sync-socket.md)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from state.publish import listen
from tests.integration.conftest import Engine


def collect(path: Path) -> tuple[list[dict], threading.Event]:
    messages: list[dict] = []
    listener = listen(str(path))
    done = threading.Event()

    def pump() -> None:
        for message in listener:
            messages.append(message)
            if message["status"] == "stopped":
                break
        listener.close()
        done.set()

    threading.Thread(target=pump, daemon=True).start()
    return messages, done


def test_run_publishes_every_transition_in_order(engine: Engine, tmp_path: Path) -> None:
    sock = tmp_path / "sync.sock"
    messages, done = collect(sock)
    cid = engine.new_id()
    result = engine("run", "--sync-socket", str(sock), "--bundle", str(engine.bundle(["sh", "-c", "exit 3"])), cid)
    assert result.returncode == 3
    assert done.wait(5)
    assert [m["status"] for m in messages] == ["creating", "created", "running", "stopped"]
    assert all(m["id"] == cid and m["ociVersion"] for m in messages)
    assert messages[1]["pid"] > 0 and "startedAt" in messages[2]
    assert messages[3]["exitStatus"] == 3 and "finishedAt" in messages[3]


def test_detached_container_exit_is_published_by_the_monitor(engine: Engine, tmp_path: Path) -> None:
    sock = tmp_path / "sync.sock"
    messages, done = collect(sock)
    cid = engine.new_id()
    engine("create", "--sync-socket", str(sock), "--bundle", str(engine.bundle(["sleep", "0.2"])), cid, check=True)
    engine("start", cid, check=True)
    assert done.wait(5)
    assert [m["status"] for m in messages] == ["creating", "created", "running", "stopped"]


def test_an_absent_listener_does_not_block_or_fail(engine: Engine, tmp_path: Path) -> None:
    started = time.monotonic()
    result = engine(
        "run", "--sync-socket", str(tmp_path / "nobody.sock"), "--bundle", str(engine.bundle(["true"])), engine.new_id()
    )
    assert result.returncode == 0
    assert "sync socket" in result.stderr or "sync" in result.stderr  # a warning, not an error
    assert time.monotonic() - started < 5
