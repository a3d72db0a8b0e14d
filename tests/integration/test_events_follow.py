"""engine events --follow sees a create/start/kill/delete cycle as JSON lines, in order."""

from __future__ import annotations

import json
import subprocess
import threading
import time

from tests.integration.conftest import ENGINE, Engine
from tests.integration.test_lifecycle import wait_for


def test_events_follow_sees_a_whole_cycle(engine: Engine) -> None:
    engine.root.mkdir(mode=0o700, exist_ok=True)
    follower = subprocess.Popen(
        [ENGINE, "--root", str(engine.root), "events", "--follow"], stdout=subprocess.PIPE, text=True
    )
    lines: list[dict] = []

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            lines.append(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    try:
        time.sleep(2.5)  # let the watch start (watchdog import, inotify setup): slower on a busy machine
        cid = engine.new_id()
        engine("create", "--bundle", str(engine.bundle(["sleep", "60"])), cid, check=True)
        engine("start", cid, check=True)
        engine("kill", cid, "KILL", check=True)
        assert wait_for(lambda: any(e.get("status") == "stopped" for e in lines), timeout=5)
        engine("delete", cid, check=True)
        assert wait_for(lambda: any(e["type"] == "deleted" for e in lines), timeout=5)
    finally:
        follower.terminate()
        follower.wait(5)
    mine = [e for e in lines if e["id"] == cid]
    statuses = [e.get("status") for e in mine if e["type"] == "state"]
    # "creating" may be overwritten by "created" before the watcher reads it; every status seen is in order.
    assert statuses[-3:] == ["created", "running", "stopped"] or statuses == [
        "creating",
        "created",
        "running",
        "stopped",
    ]
    assert mine[-1]["type"] == "deleted"
    assert all(e["state"]["id"] == cid and "createdAt" in e["state"] for e in mine if e["type"] == "state")
