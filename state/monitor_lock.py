"""Whether a root's exit monitor runs: the lock it holds, probed without loading the monitor (state/monitor.py).

`engine start` asks this once it has released the init, while the init execs: loading state/monitor.py (and the os
module with it, ~1 ms) would make start wait on its own imports instead. Only when no monitor runs does start load
the monitor to start one.
"""

import fcntl
import posix  # not os: engine/paths.py

MONITOR_LOCK = ".monitor.lock"


def running(root: str) -> bool:
    """Whether a monitor runs for this root (holds its lock), asked without waking it.

    For `engine start`: create had the monitor rescan once the container was created, so the container is
    watched unless that monitor has died since, which frees the lock. Poking it instead would load _socket and
    make the monitor rescan the whole root while start finishes (~0.5 ms of every start on a 2-core machine).
    A spawner that tries the lock during our brief shared hold takes it for a monitor on its way out, and
    retries after 2 ms (ensure_running)."""
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
