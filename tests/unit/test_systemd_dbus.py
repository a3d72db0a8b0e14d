"""The D-Bus client of the systemd driver against a fake systemd on a Unix socket: the handshake, the bus set-up
(Hello, AddMatch, Subscribe) or none on the private socket, typed properties on the wire, job waiting (the
JobRemoved signal before or after the reply, a failed job, no signal at all), error replies, and connect()'s
choice of socket and its one-line refusals. The real systemd answers in the guest lane (tests/systemd-guest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from jeepney import MessageType
from jeepney.wrappers import new_error, new_method_return

from engine.cgroups import systemd_dbus
from engine.cgroups.systemd_dbus import Connection, NotRunning, SystemdError
from tests.fake_systemd import FakeSystemd, job_removed


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeSystemd]:
    server = FakeSystemd(tmp_path / "private")
    server.on("Get", lambda m: [new_method_return(m, "v", (("s", "252.39-1~deb12u2"),))])
    yield server
    server.close()


def open_private(fake: FakeSystemd) -> Connection:
    conn = Connection(systemd_dbus._open(fake.path, 2.0), f"unix:path={fake.path}", is_bus=False)
    conn.setup()
    return conn


def test_private_socket_needs_no_hello_and_reads_the_version(fake: FakeSystemd) -> None:
    with open_private(fake) as conn:
        assert conn.version() == 252
    assert [member for _, member, _ in fake.calls] == ["Get", "Get"]  # setup's probe, then version()
    assert fake.calls[0][2] == ("org.freedesktop.systemd1.Manager", "Version")


def test_on_the_bus_hello_then_a_match_then_subscribe(fake: FakeSystemd) -> None:
    fake.on("Hello", lambda m: [new_method_return(m, "s", (":1.42",))])
    conn = Connection(systemd_dbus._open(fake.path, 2.0), "unix:path=x", is_bus=True)
    conn.setup()
    conn.close()
    assert [member for _, member, _ in fake.calls] == ["Hello", "AddMatch", "Subscribe"]
    assert "member='JobRemoved'" in fake.calls[1][2][0]


def test_start_sends_typed_properties_and_sees_a_job_that_ended_before_its_reply(fake: FakeSystemd) -> None:
    job = "/org/freedesktop/systemd1/job/7"
    fake.on(
        "StartTransientUnit",
        lambda m: [job_removed(job, "x.scope", "done"), new_method_return(m, "o", (job,))],
    )
    with open_private(fake) as conn:
        got = conn.start_transient_unit("x.scope", "replace", [("PIDs", "au", [42]), ("MemoryMax", "t", 1 << 40)])
        assert got == job
        conn.wait_for_job(job, "starting x.scope", timeout=2)
    _, _, body = fake.calls[-1]
    assert body == ("x.scope", "replace", [("PIDs", ("au", [42])), ("MemoryMax", ("t", 1 << 40))], [])


def test_a_failed_job_is_an_error_naming_what_and_the_result(fake: FakeSystemd) -> None:
    job = "/org/freedesktop/systemd1/job/8"
    fake.on("StopUnit", lambda m: [new_method_return(m, "o", (job,)), job_removed(job, "x.scope", "failed")])
    with open_private(fake) as conn:
        path = conn.stop_unit("x.scope")
        with pytest.raises(SystemdError, match=r"^systemd: stopping x\.scope: the job ended 'failed'$"):
            conn.wait_for_job(path, "stopping x.scope", timeout=2)


def test_other_jobs_signals_are_not_mistaken_for_ours(fake: FakeSystemd) -> None:
    job = "/org/freedesktop/systemd1/job/9"
    fake.on(
        "StopUnit",
        lambda m: [
            job_removed("/org/freedesktop/systemd1/job/1", "y.scope", "failed"),
            new_method_return(m, "o", (job,)),
        ],
    )
    with open_private(fake) as conn:
        path = conn.stop_unit("x.scope")
        with pytest.raises(
            SystemdError,
            match=r"^systemd: stopping x\.scope: the job did not finish within 0\.5s \(/org/.*/job/9\)$",
        ):
            conn.wait_for_job(path, "stopping x.scope", timeout=0.5)


def test_an_error_reply_keeps_its_dbus_name(fake: FakeSystemd) -> None:
    fake.on(
        "StartTransientUnit",
        lambda m: [new_error(m, "org.freedesktop.systemd1.UnitExists", "s", ("Unit x.scope already exists.",))],
    )
    with open_private(fake) as conn, pytest.raises(SystemdError) as caught:
        conn.start_transient_unit("x.scope", "replace", [])
    assert str(caught.value) == "systemd: StartTransientUnit: Unit x.scope already exists."
    assert caught.value.name == systemd_dbus.UNIT_EXISTS


def test_get_unit_of_a_missing_unit_is_none(fake: FakeSystemd) -> None:
    fake.on("GetUnit", lambda m: [new_error(m, systemd_dbus.NO_SUCH_UNIT, "s", ("Unit x.scope not loaded.",))])
    with open_private(fake) as conn:
        assert conn.get_unit("x.scope") is None


def test_connect_refuses_a_host_without_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(systemd_dbus, "BOOTED", str(tmp_path / "no-such-dir"))
    with pytest.raises(
        NotRunning, match=r"^--systemd-cgroup: systemd is not running on this host \(.* does not exist\)$"
    ):
        systemd_dbus.connect()


def test_connect_falls_back_from_the_bus_to_the_private_socket(
    fake: FakeSystemd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(systemd_dbus, "BOOTED", str(tmp_path))
    monkeypatch.setattr(systemd_dbus, "PRIVATE_SOCKET", fake.path)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    used: list[str] = []
    with systemd_dbus.connect(log=used.append) as conn:
        assert not conn.is_bus
    assert used == [f"systemd: connected through unix:path={fake.path}"]


def test_connect_says_what_it_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(systemd_dbus, "BOOTED", str(tmp_path))
    monkeypatch.setattr(systemd_dbus, "PRIVATE_SOCKET", str(tmp_path / "private"))
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/bus")
    if os.geteuid() != 0:
        pytest.skip("the private socket is tried only as root")
    with pytest.raises(NotRunning) as caught:
        systemd_dbus.connect()
    message = str(caught.value)
    assert message.startswith("--systemd-cgroup: cannot reach systemd over D-Bus (")
    assert f"unix:path={tmp_path}/bus: No such file or directory" in message
    assert f"unix:path={tmp_path}/private: No such file or directory" in message
    assert "\n" not in message


def test_dbus_addresses() -> None:
    assert systemd_dbus._unix_path("unix:path=/run/dbus/system_bus_socket") == "/run/dbus/system_bus_socket"
    assert systemd_dbus._unix_path("tcp:host=x;unix:path=/a%20b,guid=1") == "/a b"
    assert systemd_dbus._unix_path("unix:abstract=/tmp/x") == "\0/tmp/x"
    with pytest.raises(ValueError, match="no unix socket"):
        systemd_dbus._unix_path("tcp:host=localhost,port=1")


def test_message_type_of_errors_is_what_the_client_checks() -> None:
    # jeepney's enum is what Connection.call compares against; a rename would make every error look like a reply.
    assert MessageType.error.value == 3


def test_only_the_commands_that_talk_to_systemd_import_the_dbus_library(tmp_path: Path) -> None:
    # kill --all, ps, pause, resume and exec read and write cgroup files only: a systemd container's record must
    # not make them pay for jeepney (create, update and delete do, as they talk to systemd).
    record = {
        "version": 1,
        "driver": "systemd",
        "mode": "v2",
        "slice": "system.slice",
        "unit": "engine-c1.scope",
        "cgroups": {
            "version": 1,
            "driver": "cgroupfs",
            "mode": "v2",
            "cgroupsPath": "/system.slice/engine-c1.scope",
            "dirs": {"unified": str(tmp_path / "engine-c1.scope")},
            "mounts": {"unified": str(tmp_path)},
            "created": [],
        },
    }
    code = (
        "import json, sys\n"
        "from engine.cgroups import load_manager\n"
        f"m = load_manager(json.loads({json.dumps(json.dumps(record))}))\n"
        "assert type(m).__name__ == 'SystemdManager'\n"
        "m.procs(); m.is_frozen(); m.join_path_for_exec()\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] == 'jeepney'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"
