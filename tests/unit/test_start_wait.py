"""engine/start.py's wait for the init's exec, on a real fifo with a real child process standing for the init: a
blocking read when the init's end is open already, the init's pidfd polled too when it is not (yet)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.start import _read_until_exec


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "exec.fifo")
    os.mkfifo(path, 0o600)
    yield path


def _init(fifo: str, *, delay: float, writes: bytes | None) -> tuple[int, int]:
    """A child that waits `delay`, then opens the fifo and writes `writes` (None: dies without opening it)."""
    pid = os.fork()
    if pid == 0:
        time.sleep(delay)
        if writes is not None:
            fd = os.open(fifo, os.O_WRONLY)
            os.write(fd, writes)
        os._exit(0)
    return pid, os.pidfd_open(pid)


def _start(fifo: str, pid: int, pidfd: int) -> bytes:
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return _read_until_exec(reader, pidfd)
    finally:
        os.close(reader)
        os.close(pidfd)
        os.kill(pid, signal.SIGKILL)  # a child still blocked in its open (the wait gave up on it too early)
        os.waitpid(pid, 0)


@pytest.mark.parametrize("delay", [0.0, 0.2], ids=["init waiting already", "init late"])
def test_start_reads_everything_the_init_writes_until_its_end_closes(fifo: str, delay: float) -> None:
    pid, pidfd = _init(fifo, delay=delay, writes=b"0exec /bin/x: errno=002")
    if delay == 0.0:
        time.sleep(0.1)  # the child blocks in its open, counted as a writer, before we open ours
    assert _start(fifo, pid, pidfd) == b"0exec /bin/x: errno=002"


def test_an_init_that_dies_before_opening_its_end_ends_the_wait(fifo: str) -> None:
    pid, pidfd = _init(fifo, delay=0.2, writes=None)
    began = time.monotonic()
    assert _start(fifo, pid, pidfd) == b""
    assert time.monotonic() - began < 5
