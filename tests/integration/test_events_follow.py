"""engine events --follow sees every status of a create/start/kill/delete cycle as JSON lines, in order, even
when it falls behind and the statuses it has not read yet were overwritten (or deleted) meanwhile."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from state.record import ContainerRecord
from tests.integration.conftest import ENGINE, Engine
from tests.integration.test_lifecycle import wait_for

EVERY_STATUS = ["creating", "created", "running", "stopped"]


class Follower:
    """`engine events --follow` on the engine's --root, its lines parsed as they come."""

    def __init__(self, root: Path) -> None:
        root.mkdir(mode=0o700, exist_ok=True)
        self.root = root
        self.process = subprocess.Popen([ENGINE, "--root", str(root), "events", "--follow"], stdout=subprocess.PIPE)
        self.lines: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(json.loads(line))

    def wait_ready(self) -> None:
        """Until the watch is in place: a probe directory (no container: the follower only reads the record)
        gets a new stopped record until one is reported, then goes again."""
        probe = self.root / "ready-probe"
        probe.mkdir()
        try:
            for attempt in range(200):
                record = ContainerRecord(id=probe.name, bundle=str(probe), status="stopped", annotations={"n": attempt})
                (probe / "state.json.tmp").write_text(json.dumps(record.to_json()))
                (probe / "state.json.tmp").rename(probe / "state.json")
                if wait_for(lambda: any(e["id"] == "ready-probe" for e in self.lines), timeout=0.1):
                    return
            pytest.fail("engine events --follow never reported the probe")
        finally:
            shutil.rmtree(probe)

    def of(self, cid: str) -> list[dict]:
        return [e for e in self.lines if e["id"] == cid]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(5)


@pytest.fixture
def follower(engine: Engine) -> Iterator[Follower]:
    f = Follower(engine.root)
    try:
        f.wait_ready()
        yield f
    finally:
        f.close()


def statuses(events: list[dict]) -> list[str]:
    return [e["status"] for e in events if e["type"] == "state"]


def test_events_follow_sees_a_whole_cycle(engine: Engine, follower: Follower) -> None:
    cid = engine.new_id()
    engine("create", "--bundle", str(engine.bundle(["sleep", "60"])), cid, check=True)
    engine("start", cid, check=True)
    engine("kill", cid, "KILL", check=True)
    assert wait_for(lambda: "stopped" in statuses(follower.of(cid)), timeout=5)
    engine("delete", cid, check=True)
    assert wait_for(lambda: follower.of(cid)[-1]["type"] == "deleted", timeout=5)
    mine = follower.of(cid)
    assert statuses(mine) == EVERY_STATUS, mine
    assert [e["type"] for e in mine] == ["state"] * 4 + ["deleted"]
    assert all(e["state"]["id"] == cid and "createdAt" in e["state"] for e in mine if e["type"] == "state")


def test_a_follower_that_fell_behind_still_reports_every_status(engine: Engine, follower: Follower) -> None:
    """A follower descheduled on a busy machine (here: stopped with SIGSTOP) while a container is started,
    exits and is deleted. Reading state.json once it runs again showed only the last status, or nothing for
    a deleted container: CI saw creating, created, stopped once. Every status must come out, in order."""
    cid = engine.new_id()
    engine("create", "--bundle", str(engine.bundle(["true"])), cid, check=True)
    assert wait_for(lambda: "created" in statuses(follower.of(cid)), timeout=5)
    follower.process.send_signal(signal.SIGSTOP)
    try:
        engine("start", cid, check=True)
        assert wait_for(lambda: engine.state(cid)["status"] == "stopped", timeout=5)
        engine("delete", cid, check=True)
    finally:
        follower.process.send_signal(signal.SIGCONT)
    assert wait_for(lambda: follower.of(cid)[-1]["type"] == "deleted", timeout=5)
    assert statuses(follower.of(cid)) == EVERY_STATUS, follower.of(cid)
