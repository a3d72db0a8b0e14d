"""Is the container's process still the one we started? (pid reuse must not fool `state`.)

We record the init's start time (field 22 of /proc/<pid>/stat, clock ticks since boot) at create; a live
process with that pid and that start time is ours. A zombie has exited: it only waits for its parent (a
subreaper such as conmon) to reap it, so it counts as gone.
"""

import posix  # not os: its import costs every command ~1 ms (engine/paths.py)


def read_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of a process, or None when there is no such process."""
    # posix.open and one posix.read, not open(): `list` reads this for every container (the file is < 1 KiB).
    try:
        fd = posix.open(f"/proc/{pid}/stat", posix.O_RDONLY | posix.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        data = posix.read(fd, 4096)
    except ProcessLookupError:
        return None  # exited (and reaped) between the open and the read
    finally:
        posix.close(fd)
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[19])


def start_time(pid: int) -> int | None:
    stat = read_stat(pid)
    return None if stat is None else stat[1]


def is_alive(pid: int, expected_start_time: int | None) -> bool:
    if pid <= 0:
        return False
    stat = read_stat(pid)
    if stat is None:
        return False
    letter, started = stat
    if letter in ("Z", "X"):
        return False
    return expected_start_time is None or started == expected_start_time


def reap(pid: int) -> int | None:
    """Wait for our child `pid` to exit: its wait status, or None if it is not ours to wait for (someone else
    reaped it, or SIGCHLD is ignored)."""
    try:
        return posix.waitpid(pid, 0)[1]
    except ChildProcessError:
        return None
