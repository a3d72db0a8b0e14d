"""`engine start`: let a created container's init exec the user's program (runtime.md "Start").

The init blocks opening the exec fifo for writing: usually as its exec trampoline, already the container's
process (engine/linux/trampoline.py), else as Python, which then becomes the process and runs startContainer
hooks. We open the read end, which releases it; it writes "0" and execs. Its fifo fd is close-on-exec, so EOF on
our end means the exec happened; if anything failed first, the init writes the error text into the fifo before
it exits.

What start needs only once the init is released (the lifecycle machine's table, the monitor check) is imported
while the init works towards its exec, not before releasing it. No select either, as a rule: a blocking read
waits for the init's end to close, once the init has opened it (the poll on its pidfd is for when it has not).
"""

import posix  # not os: its import costs every command ~1 ms (engine/paths.py)

from engine.container import open_pidfd
from engine.errors import EngineError, suppress
from engine.log import Log
from engine.paths import exists
from state.rules import CREATED, require_startable
from state.store import EXEC_FIFO, HOOKS_FILE, Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse  # the annotation's only: the hot path parses argv by hand

    from engine.cli import Context
    from state.lifecycle import Lifecycle
    from state.record import ContainerRecord


def run(ctx: "Context", args: "argparse.Namespace") -> int:
    """`engine start <id>` (engine/cli.py calls it: OPERATION_COMMANDS)."""
    start(Store(ctx.root), args.container_id, ctx.log)
    return 0


def start(store: Store, container_id: str, log: Log) -> None:
    with store.locked(container_id) as dir_fd:
        record = store.load(container_id, dir_fd)
        # The pidfd first: the init's /proc stat, read once the pidfd pins it, tells both that it lives and that
        # it is ours; observed_status() would read it once more. Without one, that says why not.
        pidfd = open_pidfd(record) if record.status == CREATED else None
        if pidfd is None:
            require_startable(container_id, record.observed_status())
            _lifecycle(record, store, log).fire("stop")
            raise EngineError(f"cannot start container {container_id!r}: its init has exited")
        try:
            fifo = posix.open(EXEC_FIFO, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            posix.close(pidfd)
            raise EngineError(f"cannot start container {container_id!r}: it was started already") from None
        try:
            # The init is released: while it works towards its exec, get ready to record the outcome. The name
            # can go at once: the init opens its end through its own fd (an O_PATH one), never by name.
            with suppress(FileNotFoundError):
                posix.unlink(EXEC_FIFO, dir_fd=dir_fd)
            life = _lifecycle(record, store, log)
            _ensure_monitor(record, store)
            reply = _read_until_exec(fifo, pidfd)
        finally:
            posix.close(fifo)
            posix.close(pidfd)
        log.debug(f"start {container_id}: released the init (pid {record.pid}) through the exec fifo")
        if reply != b"0":
            life.fire("stop")
            detail = reply[1:].decode(errors="replace") if reply.startswith(b"0") else "its init exited"
            if "errno=" in detail:  # the exec trampoline's report: "exec /bin/x: errno=002"
                from engine.linux.trampoline import describe

                detail = describe(detail)
            raise EngineError(f"start {container_id!r}: {detail or 'its init exited'}")
        life.fire("start")
        log.debug(f"start {container_id}: running")
        # config.md: poststart hooks run after the user's process is executed, before start returns; a failing
        # one is a warning (the choice, as runc does). Only a container with hooks has the file.
        if exists(store.path(container_id, HOOKS_FILE)):
            from engine import hookpoints

            hooks = hookpoints.load(store.path(container_id))
            hookpoints.run("poststart", hooks, record.public_state("running"), log, warn_only=True, cwd=record.bundle)


def _lifecycle(record: "ContainerRecord", store: Store, log: Log) -> "Lifecycle":
    from state.lifecycle import Lifecycle

    return Lifecycle(record, store, warn=log.warning)


def _ensure_monitor(record: "ContainerRecord", store: Store) -> None:
    """A monitor that died since create is replaced (one that runs watches the container since create). Not for
    `engine run` in the foreground: it waits for its init itself, and the monitor leaves such a container to it
    (state/monitor.py)."""
    if record.reaper_pid == posix.getpid():
        return
    if not store.monitor_running():
        from state.monitor import ensure_running

        ensure_running(store.root)


def _read_until_exec(fifo: int, pidfd: int) -> bytes:
    """Everything the init writes before its fifo end closes (exec) or it dies. A blocking read returns at once
    with nothing while no writer has come yet: only then is the init's pidfd polled too."""
    posix.set_blocking(fifo, True)
    data = b""
    while chunk := posix.read(fifo, 65536):
        data += chunk
    if data:
        return data
    posix.set_blocking(fifo, False)
    return _poll_until_exec(fifo, pidfd)


def _poll_until_exec(fifo: int, pidfd: int) -> bytes:
    """_read_until_exec when the init had not opened its end yet (or dies before it does)."""
    import select  # a shared library to load

    data = b""
    poller = select.poll()
    poller.register(fifo, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    writer_seen = False
    while True:
        events = dict(poller.poll())
        if events.get(fifo, 0) & (select.POLLIN | select.POLLHUP):
            try:
                chunk = posix.read(fifo, 65536)
            except BlockingIOError:
                chunk = None
            if chunk:
                data += chunk
                writer_seen = True
                continue
            if chunk == b"" and writer_seen:
                return data  # the writer closed: exec'd, or wrote its error and exited
        if pidfd in events:
            # The init is gone; collect whatever it managed to write.
            try:
                while chunk := posix.read(fifo, 65536):
                    data += chunk
            except BlockingIOError:
                pass
            return data
