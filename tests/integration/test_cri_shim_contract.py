"""What containerd's runc shim relies on from the runtime on the Kubernetes path, checked on engine directly.

The shim parses runc's words and reads runc's log file; tests/integration/test_cri.py drives the whole path,
these pin the pieces it found (each failed there, or was racy there, before engine did the same as runc).
"""

from __future__ import annotations

import time

from tests.integration.conftest import Engine


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_kill_of_a_stopped_container_says_container_not_running(engine: Engine) -> None:
    # The shim turns a failed kill whose message has runc's "container not running" into "process already
    # finished"; any other wording fails the kill, and with it the CRI's handling of the container's exit
    # (StopContainer then waits out its deadline).
    cid = engine.new_id()
    engine("run", "--detach", "--bundle", str(engine.bundle(["true"])), cid, check=True)
    assert wait_for(lambda: engine.state(cid)["status"] == "stopped")
    late = engine("kill", cid, "KILL")
    assert late.returncode != 0
    assert "container not running" in late.stderr, late.stderr
