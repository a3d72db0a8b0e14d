"""`kill --all` and `delete`: signal every process of the container, never a pid the kernel has meanwhile given to
another process.

- SIGKILL on cgroup v2 with cgroup.kill (Linux 5.14+): one write kills the whole cgroup tree, processes forking at
  that moment included, and no pid is read at all.
- Otherwise the container is frozen first (the v1 freezer, or cgroup.freeze), so that nothing in it forks or exits
  by itself while we list and signal. Then, directory by directory: open a pidfd for every pid listed in
  cgroup.procs, read cgroup.procs again, and signal through the pidfd only the pids still listed. A pidfd names one
  process: if a pid was freed and reused between the two reads, the pidfd is either the old (dead) process, which
  the signal cannot reach, or the new one, which is signalled only if it is in the container's cgroup. Then thaw,
  except that a paused container stays paused for any signal but SIGKILL (runc 1.1 thaws it; v1 needs the thaw
  for SIGKILL to take effect).
- Processes that were in a pre-existing cgroup before the container (Manager.shared) are left alone, and such a
  cgroup never gets cgroup.kill.
"""

from __future__ import annotations

import _signal  # not signal: its enums cost ~7 ms on every kill and delete
import os

from engine.cgroups import fs
from engine.cgroups.fs import CgroupError
from engine.errors import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from engine.cgroups.manager import Manager

SIGKILL = 9
BATCH = 256  # pidfds open at once (the soft RLIMIT_NOFILE may be 1024)


def signal_cgroups(mgr: Manager, sig: int) -> set[int] | None:
    """The pids signalled, or None if cgroup.kill killed the whole tree."""
    if sig == SIGKILL and not mgr.shared:
        kill_file = mgr.kill_file()
        if kill_file is not None:
            fs.write("kill", os.path.dirname(kill_file), "cgroup.kill", "1")
            return None
    if not mgr.procs():
        return set()  # nothing to signal, nothing that could fork: no need to freeze
    paused = mgr.is_frozen()
    frozen = _freeze(mgr)
    signalled: set[int] = set()
    try:
        spared = mgr.spared()
        for directory in mgr.dirs.values():
            for sub in fs.walk_down(directory):
                _signal_listed(sub, sig, signalled, spared)
    finally:
        if frozen and (sig == SIGKILL or not paused):
            mgr.thaw()
    return signalled


def _freeze(mgr: Manager) -> bool:
    try:
        mgr.freeze()
        return True
    except CgroupError as err:
        # Still safe from pid reuse (the pidfds), but a process forking meanwhile may be missed.
        mgr.warn(f"{err}; signalling the container's processes without freezing them")
        return False


def _signal_listed(directory: str, sig: int, signalled: set[int], spared: set[int]) -> None:
    pids = [pid for pid in fs.pids_in(directory) if pid not in signalled and pid not in spared]
    for start in range(0, len(pids), BATCH):
        fds: dict[int, int] = {}
        try:
            for pid in pids[start : start + BATCH]:
                try:
                    fds[pid] = os.pidfd_open(pid)
                except OSError:
                    continue  # gone already
            listed = set(fs.pids_in(directory))
            for pid, fd in fds.items():
                if pid not in listed:
                    continue  # exited (its pid may be someone else's by now)
                with suppress(ProcessLookupError):
                    _signal.pidfd_send_signal(fd, sig)
                signalled.add(pid)
        finally:
            for fd in fds.values():
                os.close(fd)
