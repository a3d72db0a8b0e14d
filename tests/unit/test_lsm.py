"""engine/lsm.py: the AppArmor/SELinux labels of the container's process, checked on the host and written through
engine's own procfs. Neither LSM is enabled on the machines engine is tested on, so these are the only tests of
the writes; the host checks are also exercised by tests/integration (create and exec with a profile)."""

from __future__ import annotations

from typing import Any

import pytest

from engine import lsm
from engine.errors import ConfigError, EngineError


class RecordingProcFS:
    """Stands in for engine.linux.procfs.ProcFS: records writes, raises for the names in `errors`."""

    def __init__(self, errors: dict[str, OSError] | None = None) -> None:
        self.errors = errors or {}
        self.writes: list[tuple[str, bytes]] = []

    def write_thread_self(self, name: str, data: bytes) -> None:
        if name in self.errors:
            raise self.errors[name]
        self.writes.append((name, data))


def host(monkeypatch: pytest.MonkeyPatch, apparmor: bool, selinux: bool) -> None:
    monkeypatch.setattr(lsm, "apparmor_enabled", lambda: apparmor)
    monkeypatch.setattr(lsm, "selinux_enabled", lambda: selinux)


def test_a_profile_without_apparmor_is_an_error_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    host(monkeypatch, apparmor=False, selinux=False)
    with pytest.raises(ConfigError, match=r"^exec: process.apparmorProfile 'p': AppArmor is not enabled"):
        lsm.check({"apparmorProfile": "p"}, print, where="exec: ")


def test_a_label_without_selinux_is_one_warning_and_not_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    host(monkeypatch, apparmor=True, selinux=False)
    warnings: list[str] = []
    labels = lsm.check({"apparmorProfile": "p", "selinuxLabel": "l"}, warnings.append)
    assert labels == lsm.Labels(apparmor="p", selinux=None)
    assert len(warnings) == 1 and "process.selinuxLabel" in warnings[0] and "'l'" in warnings[0]


def test_nothing_asked_nothing_written(monkeypatch: pytest.MonkeyPatch) -> None:
    host(monkeypatch, apparmor=False, selinux=False)
    proc = RecordingProcFS()
    lsm.apply(proc, lsm.check({}, print))  # type: ignore[arg-type]
    assert proc.writes == []


def test_apparmor_goes_to_its_own_directory_first_then_the_shared_file() -> None:
    proc = RecordingProcFS()
    lsm.apply(proc, lsm.Labels(apparmor="p", selinux="l"))  # type: ignore[arg-type]
    assert proc.writes == [("attr/apparmor/exec", b"exec p"), ("attr/exec", b"l")]
    old_kernel = RecordingProcFS({"attr/apparmor/exec": FileNotFoundError()})
    lsm.apply(old_kernel, lsm.Labels(apparmor="p"))  # type: ignore[arg-type]
    assert old_kernel.writes == [("attr/exec", b"exec p")]


@pytest.mark.parametrize(
    ("errors", "message"),
    [
        ({"attr/exec": FileNotFoundError()}, r"^process.selinuxLabel 'l': /proc/thread-self/attr is missing$"),
        ({"attr/exec": PermissionError(13, "Permission denied")}, r"attr/exec: Permission denied$"),
    ],
)
def test_a_write_that_fails_fails_the_process(errors: dict[str, Any], message: str) -> None:
    with pytest.raises(EngineError, match=message):
        lsm.apply(RecordingProcFS(errors), lsm.Labels(selinux="l"))  # type: ignore[arg-type]
