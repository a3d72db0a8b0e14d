"""kill --all / delete (engine/cgroups/kill.py) without root: the order of freeze, list, pidfd, re-list, signal,
thaw, and the pid-reuse defence, against a fake cgroup tree whose cgroup.procs the test rewrites at will.

The real thing (the v1 freezer on this machine, cgroup.kill in the qemu cgroup2 guest) is exercised by
tests/integration/test_runc_cgroups.py and test_container_cgroups_v2.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from engine.cgroups import fs, kill
from engine.cgroups.manager import Manager
from engine.cgroups.v2 import V2Manager

SIGTERM, SIGKILL = 15, 9


class FakeManager(Manager):
    """A v1-like manager over plain directories; freezing is recorded, not done."""

    mode = "v1"

    def __init__(self, base: Path, events: list[str], paused: bool = False) -> None:
        leaf = base / "memory" / "c"
        leaf.mkdir(parents=True)
        (leaf / "cgroup.procs").write_text("")
        super().__init__("/c", {"memory": str(leaf)}, {"memory": str(base / "memory")})
        self.events = events
        self.paused = paused

    def freeze(self) -> None:
        self.events.append("freeze")

    def thaw(self) -> None:
        self.events.append("thaw")
        self.paused = False

    def is_frozen(self) -> bool:
        return self.paused


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """pidfd_open and pidfd_send_signal replaced: pidfds are numbers standing for "the process that had pid P
    when the pidfd was opened" (a generation counter), and a signal reaches that process only."""
    state: dict[str, Any] = {"events": [], "generation": {}, "signalled": [], "fds": {}, "on_open": None}

    def pidfd_open(pid: int) -> int:
        if pid in state.get("gone", ()):
            raise ProcessLookupError(pid)
        fd = 1000 + len(state["fds"])
        state["fds"][fd] = (pid, state["generation"].get(pid, 0))
        state["events"].append(f"pidfd {pid}")
        if state["on_open"] is not None:
            state["on_open"](pid)
        return fd

    def send(fd: int, sig: int) -> None:
        pid, generation = state["fds"][fd]
        if state["generation"].get(pid, 0) != generation:
            raise ProcessLookupError(pid)  # the process that pidfd named is gone
        state["signalled"].append((pid, generation, sig))
        state["events"].append(f"signal {pid}")

    monkeypatch.setattr(os, "pidfd_open", pidfd_open)
    monkeypatch.setattr(kill._signal, "pidfd_send_signal", send)
    monkeypatch.setattr(os, "close", lambda fd: None if fd >= 1000 else os.closerange(fd, fd + 1))
    return state


def procs(mgr: Manager, *pids: int) -> None:
    Path(mgr.dirs["memory"], "cgroup.procs").write_text("".join(f"{p}\n" for p in pids))


def test_freeze_then_pidfds_then_signal_then_thaw(tmp_path: Path, world: dict[str, Any]) -> None:
    mgr = FakeManager(tmp_path, world["events"])
    procs(mgr, 11, 12)
    assert kill.signal_cgroups(mgr, SIGTERM) == {11, 12}
    assert world["events"] == ["freeze", "pidfd 11", "pidfd 12", "signal 11", "signal 12", "thaw"]


def test_a_pid_reused_between_listing_and_signalling_is_not_hit(tmp_path: Path, world: dict[str, Any]) -> None:
    """12 exits and its pid goes to a process elsewhere after cgroup.procs was read: not signalled."""
    mgr = FakeManager(tmp_path, world["events"])
    procs(mgr, 11, 12)

    def reuse(pid: int) -> None:
        if pid == 12:
            world["generation"][12] = 1  # a new process now has pid 12 ...
            procs(mgr, 11)  # ... and it is not in the container's cgroup

    world["on_open"] = reuse
    assert kill.signal_cgroups(mgr, SIGKILL) == {11}
    assert [pid for pid, _, _ in world["signalled"]] == [11]


def test_a_pid_reused_after_its_pidfd_was_opened_is_not_hit(tmp_path: Path, world: dict[str, Any]) -> None:
    """The pidfd names the old process: even listed again (the new one joined the cgroup), the signal goes
    nowhere else."""
    mgr = FakeManager(tmp_path, world["events"])
    procs(mgr, 11, 12)
    opened: list[int] = []

    def reuse_later(pid: int) -> None:
        opened.append(pid)
        if len(opened) == 2:
            world["generation"][11] = 1  # 11 died and its pid was reused after its pidfd was opened

    world["on_open"] = reuse_later
    kill.signal_cgroups(mgr, SIGKILL)
    assert world["signalled"] == [(12, 0, SIGKILL)]


def test_a_paused_container_stays_paused_except_for_sigkill(tmp_path: Path, world: dict[str, Any]) -> None:
    mgr = FakeManager(tmp_path, world["events"], paused=True)
    procs(mgr, 11)
    kill.signal_cgroups(mgr, SIGTERM)
    assert world["events"][-1] == "signal 11" and mgr.paused
    kill.signal_cgroups(mgr, SIGKILL)
    assert world["events"][-1] == "thaw" and not mgr.paused


def test_an_empty_container_is_not_frozen(tmp_path: Path, world: dict[str, Any]) -> None:
    mgr = FakeManager(tmp_path, world["events"])
    assert kill.signal_cgroups(mgr, SIGKILL) == set()
    assert world["events"] == []


def test_freezing_failure_still_signals_through_pidfds(tmp_path: Path, world: dict[str, Any]) -> None:
    mgr = FakeManager(tmp_path, world["events"])
    procs(mgr, 11)

    def refuse() -> None:
        raise fs.CgroupError("freeze: no freezer")

    mgr.freeze = refuse  # type: ignore[method-assign]
    assert kill.signal_cgroups(mgr, SIGTERM) == {11}
    assert "thaw" not in world["events"]
    assert mgr.warnings == ["freeze: no freezer; signalling the container's processes without freezing them"]


def test_shared_cgroup_spares_the_earlier_processes(
    tmp_path: Path, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from state import process

    monkeypatch.setattr(process, "start_time", lambda pid: {11: 500, 12: 900}.get(pid))
    mgr = FakeManager(tmp_path, world["events"])
    mgr.shared = [[11, 500], [12, 100]]  # 11 is still that process; pid 12 is someone else by now
    procs(mgr, 11, 12, 13)
    assert mgr.procs() == [12, 13]
    assert kill.signal_cgroups(mgr, SIGKILL) == {12, 13}


def test_v2_sigkill_writes_cgroup_kill(tmp_path: Path, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    leaf = tmp_path / "c"
    leaf.mkdir()
    for name in ("cgroup.kill", "cgroup.procs", "cgroup.freeze", "cgroup.events"):
        (leaf / name).write_text("")
    mgr = V2Manager("/c", {"unified": str(leaf)}, {"unified": str(tmp_path)})
    writes: list[tuple[str, str]] = []
    monkeypatch.setattr(fs, "write", lambda where, d, name, value: writes.append((name, value)))
    assert mgr.signal_all(SIGKILL) is None
    assert writes == [("cgroup.kill", "1")]
    mgr.shared = [[os.getpid(), 1]]  # a shared cgroup never gets cgroup.kill
    (leaf / "cgroup.procs").write_text("")
    assert mgr.signal_all(SIGKILL) == set()
    assert writes == [("cgroup.kill", "1")]
    (leaf / "cgroup.kill").unlink()  # a kernel before 5.14
    mgr.shared = []
    assert mgr.kill_file() is None
