"""Reading and writing cgroupfs files, with the one-line errors the CLI prints.

Every failure names the JSON path of the config field being applied, the file and the errno text:

    linux.resources.memory.limit: writing 1024 to /sys/fs/cgroup/memory/engine/x/memory.limit_in_bytes: Device or
    resource busy

Files are opened without O_CREAT: a missing file means the kernel does not offer that knob (or the controller is
not enabled for the cgroup), and that must be an error, never a stray regular file.
"""

from __future__ import annotations

import errno
import posix  # not os: delete loads this module, and os costs ~1 ms to import (engine/paths.py)
import time

from engine.cgroups import STATE_VERSION as STATE_VERSION  # re-exported: the managers' state format
from engine.cgroups import UNIFIED as UNIFIED  # re-exported
from engine.errors import EngineError
from engine.paths import exists as path_exists
from state import jsonio  # not json: it imports re, and delete loads this module

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator


# The config field every error about where the container's cgroup is names. Here, not in layout.py (which
# defines how the path is read): the managers need only this name, not the host's layout.
CGROUPS_PATH = "linux.cgroupsPath"


class CgroupError(EngineError):
    """A cgroup could not be created, configured, joined, frozen or removed; str() is the whole one-line message."""


def jpath(prefix: str, *parts: str | int) -> str:
    """`linux.resources.devices[0].major` from ("linux.resources", "devices", 0, "major"); keys that are not
    identifiers (unified file names with dots, rdma device names with dashes) are written as ["key"], the
    convention engine.spec.load uses too. `prefix` is taken verbatim."""
    out = prefix
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{jsonio.dumps(part)}]"
    return out


def fail(where: str, message: str) -> CgroupError:
    return CgroupError(f"{where}: {' '.join(message.splitlines())}")


def _shown(value: str) -> str:
    # Quote values with blanks ("max 100000", "8:0 rbps=1") so the message stays unambiguous.
    return jsonio.dumps(value) if (not value or any(c.isspace() for c in value)) else value


def os_reason(err: OSError) -> str:
    return posix.strerror(err.errno) if err.errno else str(err)


def _in(directory: str, name: str) -> str:
    """os.path.join(directory, name) for a file name (without os: see the import)."""
    return f"{directory}{name}" if not directory or directory.endswith("/") else f"{directory}/{name}"


def write(where: str, directory: str, name: str, value: str) -> None:
    """Write `value` to directory/name in ONE write(2): cgroupfs parses each write as a whole."""
    path = _in(directory, name)
    try:
        fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
        try:
            posix.write(fd, value.encode())
        finally:
            posix.close(fd)
    except OSError as err:
        raise WriteError(where, path, value, err) from None


class WriteError(CgroupError):
    """A failed write; keeps the errno so callers can retry (EINVAL ordering) or explain (EBUSY, ENOENT)."""

    def __init__(self, where: str, path: str, value: str, err: OSError) -> None:
        self.where, self.path, self.value, self.errno = where, path, value, err.errno
        hint = ""
        if err.errno == errno.ENOENT:
            hint = " (this kernel or cgroup does not offer that file)"
        super().__init__(f"{where}: writing {_shown(value)} to {path}: {os_reason(err)}{hint}")

    def with_detail(self, detail: str) -> CgroupError:
        return CgroupError(f"{self} ({detail})")


def read(directory: str, name: str) -> str:
    """The whole file, as text (UTF-8). Through posix, not open(): a text file object costs ~10 us more per file,
    and create reads ten of them."""
    fd = posix.open(_in(directory, name), posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        chunks = []
        while chunk := posix.read(fd, _READ_SIZE):
            chunks.append(chunk)
    finally:
        posix.close(fd)
    return b"".join(chunks).decode()


_READ_SIZE = 1 << 16  # most control files are a line; cgroup.procs of a big cgroup takes a few reads


def read_or(directory: str, name: str, default: str | None = None) -> str | None:
    try:
        return read(directory, name)
    except OSError:
        return default


def exists(directory: str, name: str) -> bool:
    return path_exists(_in(directory, name))


def pids_in(directory: str) -> list[int]:
    """The processes in one cgroup (not its descendants); [] if the cgroup is gone."""
    try:
        text = read(directory, "cgroup.procs")
    except FileNotFoundError:
        return []
    return [int(line) for line in text.split()]


def walk_down(directory: str) -> Iterator[str]:
    """directory and every cgroup below it, parents before children."""
    stack = [directory]
    while stack:
        current = stack.pop()
        yield current
        try:
            # cgroupfs (kernfs) counts a directory's subdirectories in its link count: 2 means none, and one
            # stat saves listing the dozens of control files (delete walks every hierarchy twice). A filesystem
            # that does not count them (btrfs says 1) is listed.
            if posix.stat(current).st_nlink == 2:
                continue
            with posix.scandir(current) as entries:
                stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            continue


def rmdir_tree(directory: str, timeout: float = 2.0) -> None:
    """Remove a cgroup and the cgroups below it, deepest first.

    rmdir(2) on a cgroup fails with EBUSY while a task is still attached, which includes processes that were
    killed but have not finished exiting yet: retry for `timeout` seconds before giving up (runc does the same).
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    for current in reversed(list(walk_down(directory))):
        while True:
            try:
                posix.rmdir(current)
                break
            except FileNotFoundError:
                break
            except OSError as err:
                if err.errno != errno.EBUSY or time.monotonic() >= deadline:
                    pids = pids_in(current)
                    detail = f" (processes still in it: {' '.join(map(str, pids[:10]))})" if pids else ""
                    raise CgroupError(f"removing cgroup {current}: {os_reason(err)}{detail}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
