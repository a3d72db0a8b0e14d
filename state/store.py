"""The state store: one directory per container under --root, state.json written atomically, a lock per id.

Layout:  <root>/<id>/state.json   the record (written only by state transitions)
         <root>/<id>/events.jsonl every record state.json has held, one line each, in order (for `engine events`)
         <root>/<id>/config.json  the config as it was at create (later edits must not affect the container)
         <root>/<id>/exec.fifo    while created: `start` opens it to let the init exec the user's program
         <root>/<id>/hooks.json   the hooks to run (engine/hookpoints.py), only for a container that has any
         <root>/.monitor.lock     flocked by the root's exit monitor while it runs (state/monitor.py)
"""

import errno
import posix  # not os: its import costs every command ~1 ms (engine/paths.py)

from engine.errors import ContainerNotFound, EngineError, suppress
from engine.paths import absolute
from state import jsonio
from state.ids import validate_id
from state.record import ContainerRecord

DEFAULT_ROOT = "/run/engine"
STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
EXEC_FIFO = "exec.fifo"
EVENTS_FILE = "events.jsonl"
HOOKS_FILE = "hooks.json"
MONITOR_LOCK = ".monitor.lock"


class ContainerExists(EngineError):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id!r} already exists")


def write_atomically(dir_fd: int, name: str, data: bytes) -> None:
    """temp file, rename over the old one: readers see old or new, never half.

    The temp file is new (O_EXCL, an unguessable name) and never a symlink (O_NOFOLLOW): the directory may be
    writable by others (a --pid-file in /tmp), who could otherwise plant a link that we would write through.

    No fsync: the rename is atomic for every reader while the machine runs, and what these files describe (live
    processes, their cgroups) does not outlive a crash of the machine; after one, a record that lost its last
    write reads as stopped or corrupt, which `delete --force` handles. An fsync costs 2-5 ms per write where
    the root is on a disk (this machine's /run is ext4: create wrote four files, eight flushes), for nothing a
    reader can observe. runc does not flush its state.json either."""
    tmp = f".{name}.{posix.getpid()}.{posix.urandom(6).hex()}.tmp"
    flags = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC
    fd = posix.open(tmp, flags, 0o600, dir_fd=dir_fd)
    try:
        try:
            posix.write(fd, data)
        finally:
            posix.close(fd)
        posix.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with suppress(OSError):
            posix.unlink(tmp, dir_fd=dir_fd)
        raise


def read_all(fd: int) -> bytes:
    """The rest of an open file, with plain reads (no buffered file object: `list` reads one per container)."""
    chunks = []
    while chunk := posix.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def append_line(dir_fd: int, name: str, data: bytes) -> None:
    """One line at the end of `name` (O_APPEND: a single write, never interleaved with another writer's)."""
    fd = posix.open(name, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        posix.write(fd, data + b"\n")
    finally:
        posix.close(fd)


def write_file_atomically(path: str, data: bytes) -> None:
    """write_atomically for a path (e.g. a --pid-file): a reader sees the old file or the new, never half.
    Raises OSError."""
    directory, _, name = absolute(path).rpartition("/")
    dir_fd = posix.open(directory or "/", posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        write_atomically(dir_fd, name, data)
    finally:
        posix.close(dir_fd)


class DirLock:
    """An flock held on a container's directory for the length of a `with` block, which gets the directory fd.
    (A class, not @contextlib.contextmanager: importing contextlib costs ~5 ms on every command.)"""

    def __init__(self, dir_fd: int, shared: bool = False) -> None:
        self.dir_fd = dir_fd
        self.shared = shared

    def __enter__(self) -> int:
        import fcntl  # here: `state` and `list` take no lock, and fcntl is a shared library to load

        try:
            fcntl.flock(self.dir_fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        except BaseException:
            posix.close(self.dir_fd)
            raise
        return self.dir_fd

    def __exit__(self, *exc: object) -> None:
        posix.close(self.dir_fd)  # closing the last fd releases the flock


class Store:
    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = absolute(root)

    def path(self, container_id: str, *names: str) -> str:
        return "/".join((self.root.rstrip("/"), container_id, *names))  # rstrip: a root of "/"

    def ensure_root(self) -> None:
        import os  # create's: the other commands find the root or fail

        os.makedirs(self.root, mode=0o700, exist_ok=True)

    def monitor_running(self) -> bool:
        """Whether the root's exit monitor runs (holds its lock), asked without waking it, nor loading
        state/monitor.py (and the os module with it, ~1 ms): `engine start` asks once it has released the init,
        while the init execs.

        create had the monitor rescan once the container was created, so the container is watched unless that
        monitor has died since, which frees the lock. Poking it instead would load _socket and make the monitor
        rescan the whole root while start finishes (~0.5 ms of every start on a 2-core machine). A spawner that
        tries the lock during our brief shared hold takes it for a monitor on its way out, and retries after 2 ms
        (state.monitor.ensure_running)."""
        import fcntl  # as in DirLock: start has it loaded already

        try:
            fd = posix.open(self.path(MONITOR_LOCK), posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NOFOLLOW)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            posix.close(fd)
        return False

    def ids(self) -> list[str]:
        try:
            entries = posix.scandir(self.root)
        except FileNotFoundError:
            return []
        with entries:
            # scandir's file types answer is_dir() without a stat per entry (`list` of 1000 containers).
            return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())

    def reserve(self, container_id: str) -> DirLock:
        """Claim a new id atomically (mkdir) and hold its lock: `with store.reserve(id) as dir_fd:`.

        mkdir either creates the directory or fails with EEXIST, so of 16 concurrent creates of one id exactly
        one wins. The caller removes the directory itself if creating fails.
        """
        validate_id(container_id)
        self.ensure_root()
        try:
            posix.mkdir(self.path(container_id), 0o700)
        except FileExistsError:
            raise ContainerExists(container_id) from None
        dir_fd = posix.open(self.path(container_id), posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        return DirLock(dir_fd)

    def locked(self, container_id: str, *, shared: bool = False) -> DirLock:
        """Hold the container's lock (flock on its directory) so commands on one id serialize:
        `with store.locked(id) as dir_fd:`, then `store.load(id, dir_fd)`. Raises ContainerNotFound if it does not
        exist; if the holder before us deleted it while we waited, load() does (state.json is gone: no stat of it
        here first, every caller loads the record at once)."""
        validate_id(container_id)
        try:
            # O_NOFOLLOW: a symlink in place of the directory must not lead us into the directory it names.
            dir_fd = posix.open(
                self.path(container_id), posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC
            )
        except FileNotFoundError:
            raise ContainerNotFound(container_id) from None
        except OSError as err:
            if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise EngineError(f"container {container_id!r}: its state directory is not a directory") from None
        return DirLock(dir_fd, shared)

    def load(self, container_id: str, dir_fd: int | None = None) -> ContainerRecord:
        validate_id(container_id)
        try:
            if dir_fd is not None:
                fd = posix.open(STATE_FILE, posix.O_RDONLY | posix.O_CLOEXEC, dir_fd=dir_fd)
            else:
                fd = posix.open(self.path(container_id, STATE_FILE), posix.O_RDONLY | posix.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerNotFound(container_id) from None
        try:
            data = read_all(fd)
        finally:
            posix.close(fd)
        try:
            record = ContainerRecord.from_json(jsonio.loads(data))
        except (ValueError, TypeError) as err:
            raise EngineError(f"container {container_id!r}: corrupt {STATE_FILE}: {err}") from None
        if record.id != container_id:  # every later write goes to the directory the record names
            raise EngineError(f"container {container_id!r}: corrupt {STATE_FILE}: it is the record of {record.id!r}")
        return record

    def save(self, record: ContainerRecord) -> None:
        """Write state.json. Only state transitions call this (state/lifecycle.py).

        The record is appended to events.jsonl first: state.json keeps only the latest status, so a follower
        that reads it after a change can find a short-lived status already overwritten (running, between
        start and a quick exit); the log keeps every one, and since it is written first, whatever status a
        reader sees in state.json is already in the log (state/events.py replays it)."""
        data = jsonio.dumps(record.to_json()).encode()
        dir_fd = posix.open(self.path(record.id), posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        try:
            append_line(dir_fd, EVENTS_FILE, data)
            write_atomically(dir_fd, STATE_FILE, data)
        finally:
            posix.close(dir_fd)

    def remove(self, container_id: str) -> None:
        """Remove the container's directory; state.json goes first so waiters see the container gone. Never
        through a symlink: an entry that is not a directory is removed itself, not what it points at."""
        directory = self.path(container_id)
        try:
            dir_fd = posix.open(directory, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC)
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            posix.unlink(directory)
            return
        try:
            with suppress(FileNotFoundError):
                posix.unlink(STATE_FILE, dir_fd=dir_fd)
            for name in posix.listdir(dir_fd):
                try:
                    posix.unlink(name, dir_fd=dir_fd)
                except IsADirectoryError:
                    posix.rmdir(name, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass
        finally:
            posix.close(dir_fd)
        try:
            posix.rmdir(directory)
        except OSError as err:
            if err.errno != errno.ENOENT:
                raise
