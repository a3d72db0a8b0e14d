"""openat2 with RESOLVE_IN_ROOT retries EAGAIN (a mount or rename elsewhere on the host raced a ".." step).

openat2(2): "EAGAIN: RESOLVE_IN_ROOT or RESOLVE_BENEATH was specified and the kernel could not ensure that a
'..' component didn't escape (due to a race condition or potential attack). The caller may choose to retry."
The race cannot be provoked on demand, so the syscall is replaced by one that fails the way the kernel does.
"""

from __future__ import annotations

import ctypes
import errno
import os

import pytest

from engine.linux import paths


class _RacingLibc:
    """libc whose syscall() fails with EAGAIN `failures` times, then with `final_errno` (or opens /)."""

    def __init__(self, failures: int, final_errno: int | None = None) -> None:
        self.failures = failures
        self.final_errno = final_errno
        self.calls = 0

    def syscall(self, *_args: object) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            ctypes.set_errno(errno.EAGAIN)
            return -1
        if self.final_errno is not None:
            ctypes.set_errno(self.final_errno)
            return -1
        return os.open("/", os.O_PATH | os.O_CLOEXEC)


def test_a_raced_walk_is_retried_until_it_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    racing = _RacingLibc(failures=3)
    monkeypatch.setattr(paths, "libc", racing)
    fd = paths.openat2(-100, "etc", os.O_PATH, resolve=paths.RESOLVE_IN_ROOT)
    os.close(fd)
    assert racing.calls == 4


def test_other_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    racing = _RacingLibc(failures=0, final_errno=errno.ELOOP)
    monkeypatch.setattr(paths, "libc", racing)
    with pytest.raises(OSError) as caught:
        paths.openat2(-100, "etc", os.O_PATH, resolve=paths.RESOLVE_IN_ROOT)
    assert caught.value.errno == errno.ELOOP and racing.calls == 1


def test_a_host_that_never_stops_racing_gets_eagain_in_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    racing = _RacingLibc(failures=10**6)
    monkeypatch.setattr(paths, "libc", racing)
    with pytest.raises(OSError) as caught:
        paths.openat2(-100, "etc", os.O_PATH, resolve=paths.RESOLVE_IN_ROOT)
    assert caught.value.errno == errno.EAGAIN and racing.calls == paths._EAGAIN_RETRIES
