"""--sync-socket: a supervisor listening on a unix socket receives every transition of a container, in order,
with the state plus createdAt/startedAt/finishedAt and the exit status when known (docs/sync-socket.md)."""

from __future__ import annotations

import pstats
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from state.publish import listen
from tests.integration.conftest import ENGINE, Engine


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
    """Each of run's four messages meets no listener: one warning each, naming why (the socket is absent, not a
    timeout), and no waiting. The time is measured inside engine (cProfile's wall clock around every
    publish()), so a busy machine's slow start-up cannot hide a wait: blocking for the 0.5 s timeout on each
    message would spend 2 s there; not blocking spends a few ms."""
    sock = tmp_path / "nobody.sock"
    profile = tmp_path / "run.prof"
    bundle = engine.bundle(["true"])
    with tempfile.TemporaryFile("w+") as err:
        code = subprocess.run(
            [sys.executable, "-m", "cProfile", "-o", str(profile), ENGINE, "--root", str(engine.root), "run",
             "--sync-socket", str(sock), "--bundle", str(bundle), engine.new_id()],
            stdout=subprocess.DEVNULL, stderr=err, timeout=60,
        ).returncode  # fmt: skip
        err.seek(0)
        stderr = err.read()
    assert code == 0, stderr
    warning = f"engine: warning: sync socket {sock}: cannot connect: No such file or directory; message dropped"
    assert stderr.splitlines() == [warning] * 4, stderr
    calls = [(n, seconds) for (f, _, name), (_, n, _, seconds, _) in pstats.Stats(str(profile)).stats.items()
             if name == "publish" and f.endswith("state/publish.py")]  # fmt: skip
    assert calls and calls[0][0] == 4, calls
    assert calls[0][1] < 0.2, f"publishing to an absent listener took {calls[0][1]:.3f}s in all"
