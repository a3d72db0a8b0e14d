"""The exit monitor's lock file, and whether a monitor holds it: apart from state/monitor.py, so that `engine start`
asks without importing the monitor (~0.3 ms of every start, on its path once the init is released)."""

from __future__ import annotations

import fcntl
import posix  # not os: its import costs a hot command ~1 ms

MONITOR_LOCK = ".monitor.lock"


def running(root: str) -> bool:
    """Whether a monitor runs for this root (holds its lock), asked without waking it.

    For `engine start`: create had the monitor rescan once the container was created, so the container is
    watched unless that monitor has died since, which frees the lock. Poking it instead would load _socket and
    make the monitor rescan the whole root while start finishes (~0.5 ms of every start on a 2-core machine).
    A spawner that tries the lock during our brief shared hold takes it for a monitor on its way out, and
    retries after 2 ms (state.monitor.ensure_running)."""
    try:
        fd = posix.open(f"{root}/{MONITOR_LOCK}", posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        posix.close(fd)
    return False
