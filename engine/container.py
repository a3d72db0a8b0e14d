"""Operations on an existing container shared by start, kill, delete and run."""

import _signal  # not signal: it wraps every number in an enum (~7 ms on every kill and delete)
import posix  # not os: its import costs every command ~1 ms (engine/paths.py)
import time

from state import process
from state.record import ContainerRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def open_pidfd(record: ContainerRecord) -> int | None:
    """A pidfd on the container's init, or None if it is gone. The pidfd pins the process, so checking the
    start time after opening it proves the pid was not reused by another process."""
    if record.pid <= 0:
        return None
    try:
        fd = posix.pidfd_open(record.pid)
    except OSError:
        return None
    if not process.is_alive(record.pid, record.pid_start_time):
        posix.close(fd)
        return None
    return fd


def signal_init(record: ContainerRecord, sig: int) -> bool:
    fd = open_pidfd(record)
    if fd is None:
        return False
    try:
        _signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        posix.close(fd)


def container_pids(record: ContainerRecord) -> list[int]:
    """Every process in the container, the init first: those in its cgroups, or without cgroup information,
    those sharing the init's pid namespace."""
    if record.cgroups:
        from engine.cgroups import load_manager

        others = [pid for pid in load_manager(record.cgroups).procs() if pid != record.pid]
        return [record.pid, *others]
    try:
        ns = posix.readlink(f"/proc/{record.pid}/ns/pid")
    except OSError:
        return []
    if ns == posix.readlink("/proc/self/ns/pid"):
        return [record.pid]  # no pid namespace of its own: only the init is surely ours
    pids = [record.pid]
    for name in posix.listdir("/proc"):
        if name.isdigit() and int(name) != record.pid:
            try:  # not contextlib.suppress: contextlib costs start, kill and delete ~2 ms to import
                if posix.readlink(f"/proc/{name}/ns/pid") == ns:
                    pids.append(int(name))
            except OSError:
                pass
    return pids


def signal_all(record: ContainerRecord, sig: int, warn: "Callable[[str], None] | None" = None) -> None:
    """Signal every process of the container (kill --all, delete), never a reused pid: through its cgroups
    (Manager.signal_all: cgroup.kill, or freeze + pidfds + thaw), and the init through its verified pidfd if the
    cgroups did not reach it. Without cgroups: the init's pid namespace, each pid through a pidfd."""
    if record.cgroups:
        from engine.cgroups import load_manager

        signalled = load_manager(record.cgroups, warn=warn).signal_all(sig)
        if signalled is not None and record.pid not in signalled:
            signal_init(record, sig)
        return
    signal_init(record, sig)
    for pid in container_pids(record)[1:]:
        try:
            fd = posix.pidfd_open(pid)
        except OSError:
            continue
        try:
            # Still in the init's pid namespace now that the pidfd pins the process: not a reused pid.
            if posix.readlink(f"/proc/{pid}/ns/pid") == posix.readlink(f"/proc/{record.pid}/ns/pid"):
                _signal.pidfd_send_signal(fd, sig)
        except OSError:
            pass
        finally:
            posix.close(fd)


def wait_for_exit(record: ContainerRecord, timeout: float) -> bool:
    """True once the init has exited (a zombie counts), False on timeout."""
    fd = open_pidfd(record)
    if fd is None:
        return True
    import select  # here: a shared library to load, which kill never needs, nor delete once the init is gone

    try:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if select.select([fd], [], [], left)[0]:
                return True
    finally:
        posix.close(fd)
