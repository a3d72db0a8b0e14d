"""SystemdManager's conversation with systemd, against the fake systemd of tests/fake_systemd.py: what create, the
first add, update and destroy ask for, and how they react to systemd's errors. The cgroup files are the cgroupfs
manager's job (its own tests); here its update/add are recorded instead. The whole thing runs for real in the
systemd guest (tests/integration/test_systemd_cgroup.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from jeepney import Message
from jeepney.wrappers import new_error, new_method_return

from engine.cgroups import load_manager, systemd_dbus
from engine.cgroups.fs import CgroupError
from engine.cgroups.layout import Hierarchy, Layout
from engine.cgroups.systemd import SystemdManager
from tests.fake_systemd import FakeSystemd, job_removed

UNIT = "engine-c1.scope"
JOB = "/org/freedesktop/systemd1/job/3"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSystemd]:
    server = FakeSystemd(tmp_path / "private")
    monkeypatch.setattr(systemd_dbus, "BOOTED", str(tmp_path))
    monkeypatch.setattr(systemd_dbus, "PRIVATE_SOCKET", server.path)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    server.on("Get", lambda m: [new_method_return(m, "v", (("s", "252.39-1~deb12u2"),))])
    server.on("GetUnit", lambda m: [new_error(m, systemd_dbus.NO_SUCH_UNIT, "s", ("Unit not loaded.",))])
    server.on("StartTransientUnit", lambda m: [new_method_return(m, "o", (JOB,)), job_removed(JOB, UNIT, "done")])
    server.on("StopUnit", lambda m: [new_method_return(m, "o", (JOB,)), job_removed(JOB, UNIT, "done")])
    yield server
    server.close()


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []


def manager(tmp_path: Path) -> tuple[SystemdManager, Recorder]:
    """A v2 host whose cgroup2 mount is tmp_path/cgroup; the unit's directory exists as systemd would make it."""
    mount = tmp_path / "cgroup"
    (mount / "system.slice" / UNIT).mkdir(parents=True)
    host = Layout("v2", (), Hierarchy(str(mount), "/", "unified", (), "/"))
    mgr = SystemdManager.for_container("system.slice:engine:c1", "c1", host)
    rec = Recorder()
    mgr.inner.adopt = lambda res, **kw: rec.calls.append(("adopt", res))  # type: ignore[method-assign]
    mgr.inner.update = lambda res, **kw: rec.calls.append(("update", res))  # type: ignore[method-assign]
    mgr.inner.add = lambda pid: rec.calls.append(("add", pid))  # type: ignore[method-assign]
    return mgr, rec


def members(fake: FakeSystemd) -> list[str]:
    return [member for _, member, _ in fake.calls if member != "Get"]


def sent_properties(fake: FakeSystemd, member: str) -> dict:
    body = next(body for _, m, body in fake.calls if m == member)
    return {name: value for name, (_, value) in body[2]}  # (name, mode or runtime, properties, ...)


def test_create_asks_nothing_to_start_and_the_first_add_starts_the_scope(fake: FakeSystemd, tmp_path: Path) -> None:
    mgr, rec = manager(tmp_path)
    mgr.create({"memory": {"limit": 1 << 30}, "pids": {"limit": 9}})
    assert members(fake) == ["GetUnit"]  # is a unit of that name there already?
    mgr.add(4242)
    assert members(fake) == ["GetUnit", "StartTransientUnit"]
    name, mode = fake.calls[-1][2][:2]
    assert (name, mode) == (UNIT, "replace")
    props = sent_properties(fake, "StartTransientUnit")
    assert props["PIDs"] == [4242] and props["Slice"] == "system.slice" and props["Delegate"] is True
    assert props["MemoryMax"] == 1 << 30 and props["TasksMax"] == 9
    assert props["DevicePolicy"] == "strict"
    # systemd moved the process (PIDs=); then the files, the device policy included, as with cgroupfs.
    assert rec.calls == [("adopt", {"memory": {"limit": 1 << 30}, "pids": {"limit": 9}})]
    mgr.add(4343)  # later processes (exec) only join
    assert rec.calls[-1] == ("add", 4343) and members(fake).count("StartTransientUnit") == 1


def test_an_active_unit_of_that_name_is_refused_at_create(fake: FakeSystemd, tmp_path: Path) -> None:
    path = "/org/freedesktop/systemd1/unit/engine_2dc1_2escope"
    fake.on("GetUnit", lambda m: [new_method_return(m, "o", (path,))])

    def get(m: Message) -> list[Message]:
        value = "active" if m.body[1] == "ActiveState" else "252"
        return [new_method_return(m, "v", (("s", value),))]

    fake.on("Get", get)
    mgr, _ = manager(tmp_path)
    with pytest.raises(
        CgroupError, match=rf"^linux\.cgroupsPath: the systemd unit {UNIT} already exists and is active"
    ):
        mgr.create({})


def test_a_failed_leftover_unit_is_reset_and_the_start_tried_once_more(fake: FakeSystemd, tmp_path: Path) -> None:
    tries: list[int] = []

    def start(m: Message) -> list[Message]:
        tries.append(1)
        if len(tries) == 1:
            return [new_error(m, systemd_dbus.UNIT_EXISTS, "s", (f"Unit {UNIT} already exists.",))]
        return [new_method_return(m, "o", (JOB,)), job_removed(JOB, UNIT, "done")]

    fake.on("StartTransientUnit", start)
    mgr, _ = manager(tmp_path)
    mgr.create({})
    mgr.add(1)
    assert members(fake) == ["GetUnit", "StartTransientUnit", "ResetFailedUnit", "StartTransientUnit"]


def test_a_failed_start_job_is_an_error_and_resets_the_unit(fake: FakeSystemd, tmp_path: Path) -> None:
    fake.on("StartTransientUnit", lambda m: [new_method_return(m, "o", (JOB,)), job_removed(JOB, UNIT, "failed")])
    mgr, rec = manager(tmp_path)
    mgr.create({})
    with pytest.raises(CgroupError, match=rf"^linux\.cgroupsPath: systemd: starting {UNIT}: the job ended 'failed'$"):
        mgr.add(1)
    assert members(fake)[-1] == "ResetFailedUnit"
    assert rec.calls == []  # no file was written


def test_a_property_this_systemd_does_not_know_is_dropped_with_a_warning(fake: FakeSystemd, tmp_path: Path) -> None:
    def start(m: Message) -> list[Message]:
        names = [name for name, _ in m.body[2]]
        if "IOWeight" in names:
            text = "Cannot set property IOWeight, or unknown property."
            return [new_error(m, systemd_dbus.PROPERTY_READ_ONLY, "s", (text,))]
        return [new_method_return(m, "o", (JOB,)), job_removed(JOB, UNIT, "done")]

    fake.on("StartTransientUnit", start)
    mgr, _ = manager(tmp_path)
    mgr.create({"blockIO": {"weight": 500}, "pids": {"limit": 3}})
    mgr.add(1)
    assert mgr.warnings == ["systemd does not know the unit property IOWeight; it is set in the cgroup files only"]
    props = {name: value for name, (_, value) in fake.calls[-1][2][2]}
    assert "IOWeight" not in props and props["TasksMax"] == 3


def test_a_failure_after_the_start_stops_the_unit_again(fake: FakeSystemd, tmp_path: Path) -> None:
    mgr, _ = manager(tmp_path)

    def refuse(res: dict, **kw: object) -> None:
        raise CgroupError('linux.resources.unified["pids.bogus"]: no such file')

    mgr.inner.adopt = refuse  # type: ignore[method-assign]
    mgr.create({})
    with pytest.raises(CgroupError, match=r"pids\.bogus"):
        mgr.add(1)
    assert members(fake)[-3:] == ["StartTransientUnit", "StopUnit", "ResetFailedUnit"]


def test_destroy_stops_resets_and_removes_what_is_left(fake: FakeSystemd, tmp_path: Path) -> None:
    mgr, _ = manager(tmp_path)
    leftover = Path(mgr.inner.dirs["unified"]) / "sub"
    leftover.mkdir()  # a cgroup the container made below its scope (Delegate=yes)
    mgr.destroy()
    assert members(fake) == ["StopUnit", "ResetFailedUnit"]
    assert fake.calls[-2][2] == (UNIT, "replace")
    assert not Path(mgr.inner.dirs["unified"]).exists()
    assert (tmp_path / "cgroup" / "system.slice").is_dir()  # the slice is systemd's: left alone


def test_destroy_of_a_unit_systemd_no_longer_has(fake: FakeSystemd, tmp_path: Path) -> None:
    fake.on("StopUnit", lambda m: [new_error(m, systemd_dbus.NO_SUCH_UNIT, "s", ("Unit not loaded.",))])
    mgr, _ = manager(tmp_path)
    mgr.destroy()  # a scope systemd already stopped because it became empty: fine
    assert not Path(mgr.inner.dirs["unified"]).exists()


def test_update_sets_the_properties_then_the_files(fake: FakeSystemd, tmp_path: Path) -> None:
    mgr, rec = manager(tmp_path)
    (Path(mgr.inner.dirs["unified"]) / "cpu.max").write_text("20000 100000\n")
    mgr.update({"cpu": {"period": 50000}, "memory": {"limit": 1 << 20}})
    props = {name: value for name, (_, value) in fake.calls[-1][2][2]}
    assert fake.calls[-1][1] == "SetUnitProperties" and fake.calls[-1][2][:2] == (UNIT, True)
    assert props == {"MemoryMax": 1 << 20, "CPUQuotaPeriodUSec": 50000, "CPUQuotaPerSecUSec": 400000}
    assert rec.calls == [("update", {"cpu": {"period": 50000}, "memory": {"limit": 1 << 20}})]


def test_the_record_names_the_driver_so_later_commands_need_no_flag(tmp_path: Path) -> None:
    mgr, _ = manager(tmp_path)
    data = mgr.to_json()
    assert (data["driver"], data["mode"], data["unit"], data["slice"]) == ("systemd", "v2", UNIT, "system.slice")
    again = load_manager(data)
    assert isinstance(again, SystemdManager)
    assert again.unit == mgr.unit and again.inner.dirs == mgr.inner.dirs
    assert again.inner.created == mgr.inner.created  # the unit's cgroups, removed by destroy


def test_without_systemd_destroy_still_removes_the_cgroups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(systemd_dbus, "BOOTED", str(tmp_path / "none"))
    mgr, _ = manager(tmp_path)
    mgr.destroy()
    assert not Path(mgr.inner.dirs["unified"]).exists()


def test_a_rootless_engine_is_refused_the_systemd_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    # systemd's user instance (runc's rootless systemd driver) is not used: a clear error before anything is made.
    import engine.rootless
    from engine.create import _create_systemd_cgroups
    from engine.errors import EngineError

    monkeypatch.setattr(engine.rootless, "rootless", lambda: True)
    undo: list = []
    with pytest.raises(EngineError, match=r"^--systemd-cgroup: not supported for a rootless engine"):
        _create_systemd_cgroups({}, None, undo, None)  # type: ignore[arg-type]
    assert undo == []


def test_delete_force_without_state_stops_the_scope_its_path_names(
    fake: FakeSystemd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A corrupt state.json: delete --force finds the cgroups by linux.cgroupsPath; with --systemd-cgroup (podman
    # passes it to every command) that path names a scope, which must be stopped, not only emptied.
    from engine.cgroups import layout, orphan

    mgr, _ = manager(tmp_path)
    scope = Path(mgr.inner.dirs["unified"])
    (scope / "cgroup.procs").write_text("")
    (scope / "cgroup.kill").write_text("")
    host = Layout("v2", (), Hierarchy(str(tmp_path / "cgroup"), "/", "unified", (), "/"))
    monkeypatch.setattr(layout, "detect", lambda: host)
    kills: list[str] = []

    def stop(m: Message) -> list[Message]:  # systemd removes the scope's cgroup when it stops the unit
        kills.append((scope / "cgroup.kill").read_text())
        for f in scope.iterdir():
            f.unlink()
        scope.rmdir()
        return [new_method_return(m, "o", (JOB,)), job_removed(JOB, UNIT, "done")]

    fake.on("StopUnit", stop)
    removed = orphan.remove_orphan_cgroups("system.slice:engine:c1", "c1", 1.0, systemd=True)
    assert removed == [str(scope)]
    assert kills == ["1"]  # killed first (cgroup.kill), then the unit stopped
    assert members(fake) == ["StopUnit", "ResetFailedUnit"]
    assert not scope.exists() and (tmp_path / "cgroup" / "system.slice").is_dir()
