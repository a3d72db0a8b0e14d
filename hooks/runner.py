"""Run OCI lifecycle hooks as config.md "POSIX-platform Hooks" says.

A hook is the config.json shape {"path", "args"?, "env"?, "timeout"?}:
  * path is absolute and exec'd as is (no PATH search);
  * args is the whole argv, args[0] included; absent or empty, argv is [path] (as runc does);
  * env replaces the environment; absent, the hook gets an empty one;
  * the container's state JSON is written to the hook's stdin, then stdin is closed;
  * timeout (seconds, > 0): when it expires, the hook's whole process group is SIGKILLed and the hook reaped;
  * cwd (the caller's choice, not config.json's): the hook's working directory. The engine passes runc's:
    the bundle for the hooks `create` runs, the rootfs for createContainer (engine/hookpoints.py).

Why it is built this way:
  * os.posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK) + exec) instead of subprocess: nothing of the Python
    heap is copied, no Python code runs in the child (safe in a threaded process and in a forked container
    init), exec errors come back as OSError, and `import subprocess` alone costs ~15 ms on every command.
  * The hook gets a new session (setsid), so it leads its own process group and a timeout can kill
    grandchildren too. A grandchild that makes its own session escapes this; only a cgroup can catch that.
  * stdout AND stderr of the hook go into one capture pipe. The runtime's stdout is never touched (conmon and
    containerd parse it); the last 64 KiB of output are kept, quoted in the error on failure, and dropped on
    success. The pipe is always drained, so a chatty hook never blocks on a full pipe.
  * Waiting uses one poll() over the pipes and a pidfd (Linux >= 5.3; without one, a 10 ms tick), with
    waitpid(WNOHANG): no threads, no SIGCHLD handler. The caller must not reap arbitrary children
    (waitpid(-1)) while a hook runs, or the hook's exit status is lost.
  * When the hook exits, output still in the pipe is drained without blocking and the pipe is closed: a
    grandchild that inherited the pipe and lives on does not make us wait for it.
  * Signal dispositions and the signal mask are reset to defaults in the child: ignored signals (Python
    ignores SIGPIPE) and blocked ones would otherwise survive exec. (glibc's posix_spawn leaves its own two
    internal real-time signals, 32 and 33, ignored; nothing but glibc uses them, and it installs its handlers
    for them.) File descriptors the runtime left inheritable are closed in the child, so a hook only gets
    stdin, stdout and stderr.

Only the stdlib is imported here: hooks run on the create/start/delete paths.
"""

from __future__ import annotations

# _signal, not signal: signal.py wraps every number in an enum, and importing enum costs ~8 ms.
import _signal
import fcntl
import os
import select
import time

from engine.errors import suppress
from state.process import reap

TYPE_CHECKING = False
if TYPE_CHECKING:  # the typing machinery costs import time on every command; annotations are strings here
    from collections.abc import Callable, Iterable

    from engine.spec.typed import Hook

STAGES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")

OUTPUT_KEEP = 64 * 1024  # bytes of hook output kept (the tail: the cause of a failure is usually last)
MESSAGE_OUTPUT = 400  # characters of that output quoted in an error message
_FALLBACK_TICK_MS = 10  # how often to look for the hook's exit where pidfd_open is not available
# What waitpid cannot tell when someone else reaped the hook (waitpid(-1) elsewhere, SIGCHLD ignored).
STATUS_LOST = -1
_DEFAULT_SIGNALS = tuple(sorted(_signal.valid_signals() - {_signal.SIGKILL, _signal.SIGSTOP}))


class HookError(Exception):
    """A hook failed. str(err) is one line: stage, hook path, exit status/signal/timeout, and its output."""

    def __init__(
        self,
        message: str,
        *,
        stage: str,
        path: str | None,
        exit_status: int | None = None,
        signal_number: int | None = None,
        timed_out: bool = False,
        output: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.path = path
        self.exit_status = exit_status
        self.signal_number = signal_number
        self.timed_out = timed_out
        self.output = output


def run_hook(
    hook: Hook,
    state_json: bytes,
    *,
    stage: str,
    index: int | None = None,
    cwd: str | None = None,
    exec_fd: int | None = None,
) -> None:
    """Run one hook to completion; raise HookError if it cannot be run, fails, is killed or times out.

    index (the hook's position in its stage) only makes the error message point at the right entry.
    cwd: the hook's working directory (None: ours).
    exec_fd: run the hook through this program (engine.linux.trampoline: a sealed memfd that execs its argv[0]
    with the rest) instead of posix_spawn: the container's init runs startContainer hooks this way, so that
    while the kernel resolves the hook's #! or ELF interpreter inside the container, /proc/self/exe is not the
    host's interpreter.
    """
    label = f"{stage} hook" + (f"[{index}]" if index is not None else "")
    path, argv, env, timeout = _parse(hook, stage, label)
    label = f"{label} {path}"

    # Every descriptor lives in `fds` until closed, and whoever closes one sets it to -1 there, so the
    # cleanup below never closes a number twice (it could be someone else's descriptor by then).
    fds = {"in_r": -1, "in_w": -1, "out_r": -1, "out_w": -1, "pidfd": -1}
    pid = 0
    status: int | None = None
    try:
        fds["in_r"], fds["in_w"] = _pipe()
        fds["out_r"], fds["out_w"] = _pipe()
        file_actions: list[tuple[int, ...]] = [
            (os.POSIX_SPAWN_DUP2, fds["in_r"], 0),
            (os.POSIX_SPAWN_DUP2, fds["out_w"], 1),
            (os.POSIX_SPAWN_DUP2, fds["out_w"], 2),
        ]
        file_actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds()]
        try:
            with _WorkingDirectory(cwd):
                pid = (
                    _fork_exec(exec_fd, [path, *argv], env, fds["in_r"], fds["out_w"])
                    if exec_fd is not None
                    else _spawn(path, argv, env, file_actions)
                )
        except _NoWorkingDirectory as err:
            raise HookError(
                f"{label}: cannot enter its working directory {cwd}: {err}", stage=stage, path=path
            ) from None
        except OSError as err:
            raise HookError(f"{label}: cannot execute: {err.strerror or err}", stage=stage, path=path) from None
        except ValueError as err:  # e.g. a NUL byte in an argument
            raise HookError(f"{label}: invalid hook: {err}", stage=stage, path=path) from None
        # Our copies of the child's ends: keeping them would hide EOF on stdout and EPIPE on stdin.
        _close(fds, "in_r", "out_w")
        fds["pidfd"] = _pidfd_open(pid)
        output, status, timed_out = _supervise(pid, fds, timeout, state_json)
    finally:
        _close(fds, *fds)
        if pid and status is None:
            # Interrupted (KeyboardInterrupt, MemoryError...): never leave the hook or its group running.
            _kill_group(pid)
            _reap(pid)

    if exec_fd is not None and status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 127:
        # The trampoline's own report of a failed exec ("exec <path>: errno=N"): the same one-line error as
        # posix_spawn's OSError would have given.
        head, sep, number = output.decode(errors="replace").strip().rpartition(": errno=")
        if sep and head.startswith("exec ") and number.isdigit():
            raise HookError(f"{label}: cannot execute: {os.strerror(int(number))}", stage=stage, path=path)
    _check(status, timed_out, timeout, output, label=label, stage=stage, path=path)


def _spawn(path: str, argv: list[str], env: dict[str, str], file_actions: list[tuple[int, ...]]) -> int:
    return os.posix_spawn(
        path,
        argv,
        env,
        file_actions=file_actions,
        setsid=True,
        setsigmask=(),
        setsigdef=_DEFAULT_SIGNALS,
    )


def _fork_exec(exec_fd: int, argv: list[str], env: dict[str, str], stdin: int, stdout: int) -> int:
    """posix_spawn's job done by hand, ending in an exec of exec_fd (fexecve): for a single-threaded caller."""
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(stdin, 0)
            os.dup2(stdout, 1)
            os.dup2(stdout, 2)
            os.closerange(3, exec_fd)
            os.closerange(exec_fd + 1, 1 << 20)
            os.setsid()
            for sig in _DEFAULT_SIGNALS:
                with suppress(OSError, ValueError):
                    _signal.signal(sig, _signal.SIG_DFL)
            _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
            os.execve(exec_fd, argv, env)
        finally:
            os._exit(127)
    return pid


def run_hooks(
    stage: str,
    hooks: Iterable[Hook] | None,
    state_json: bytes,
    *,
    warn_only: bool,
    warn: Callable[[str], None],
    cwd: str | None = None,
    exec_fds: list[int] | None = None,
) -> None:
    """Run a stage's hooks in order. The first failure raises HookError, unless warn_only: then each failure
    is passed to warn(message) and the remaining hooks still run (runtime.md step 13, poststop).
    cwd: the hooks' working directory (None: ours). exec_fds: one trampoline fd per hook (run_hook's exec_fd)."""
    for index, hook in enumerate(hooks or ()):
        try:
            exec_fd = exec_fds[index] if exec_fds is not None else None
            run_hook(hook, state_json, stage=stage, index=index, cwd=cwd, exec_fd=exec_fd)
        except HookError as err:
            if not warn_only:
                raise
            warn(str(err))


def _parse(hook: object, stage: str, label: str) -> tuple[str, list[str], dict[str, str], float | None]:
    def bad(reason: str, path: str | None = None) -> HookError:
        return HookError(f"{label}{' ' + path if path else ''}: invalid hook: {reason}", stage=stage, path=path)

    if not isinstance(hook, dict):
        raise bad(f"expected an object, got {type(hook).__name__}")
    path = hook.get("path")
    if not isinstance(path, str) or not path:
        raise bad('"path" is required and must be a non-empty string')
    if not path.startswith("/"):
        raise bad('"path" must be absolute', path)

    args = hook.get("args")
    if args is None or args == []:
        argv = [path]
    elif isinstance(args, list) and all(isinstance(a, str) for a in args):
        argv = list(args)
    else:
        raise bad('"args" must be an array of strings', path)

    env_list = hook.get("env")
    env: dict[str, str] = {}
    if env_list is not None:
        if not isinstance(env_list, list) or not all(isinstance(e, str) for e in env_list):
            raise bad('"env" must be an array of strings', path)
        for entry in env_list:
            key, sep, value = entry.partition("=")
            if not sep or not key:
                raise bad(f'"env" entry {entry!r} is not NAME=VALUE', path)
            env[key] = value  # a repeated name keeps the last value

    timeout = hook.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0):
        raise bad(f'"timeout" must be a number greater than zero, got {timeout!r}', path)
    return path, argv, env, timeout


def _supervise(pid: int, fds: dict[str, int], timeout: float | None, state_json: bytes) -> tuple[bytes, int, bool]:
    """Feed stdin, collect output, wait for exit or the deadline: (output, wait status, timed out)."""
    output = bytearray()
    pending = memoryview(bytes(state_json))
    in_w, out_r, pidfd = fds["in_w"], fds["out_r"], fds["pidfd"]
    os.set_blocking(in_w, False)
    os.set_blocking(out_r, False)
    poller = select.poll()
    poller.register(out_r, select.POLLIN)
    if pending:
        poller.register(in_w, select.POLLOUT)
    else:
        _close(fds, "in_w")
    if pidfd >= 0:
        poller.register(pidfd, select.POLLIN)
    deadline = None if timeout is None else time.monotonic() + timeout

    while True:
        try:
            wpid, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            wpid, status = pid, STATUS_LOST
        if wpid:
            break
        if deadline is None:
            wait_ms = -1
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill_group(pid)
                status = _reap(pid)
                _drain(out_r, output)
                return bytes(output), status, True
            wait_ms = int(remaining * 1000) + 1
        if pidfd < 0:
            wait_ms = _FALLBACK_TICK_MS if wait_ms < 0 else min(wait_ms, _FALLBACK_TICK_MS)
        for fd, _events in poller.poll(wait_ms):
            if fd == out_r:
                if not _drain(out_r, output):  # EOF: every writer is gone
                    poller.unregister(out_r)
            elif fd == in_w:
                try:
                    pending = pending[os.write(in_w, pending) :]
                except BlockingIOError:
                    continue
                except OSError:  # EPIPE: the hook does not read its stdin; that is its right
                    pending = pending[:0]
                if not pending:
                    poller.unregister(in_w)
                    _close(fds, "in_w")  # EOF for the hook
    # The hook is gone; what it wrote is in the pipe already. Take that, but do not wait for a grandchild
    # that may still hold the pipe open.
    _drain(out_r, output)
    return bytes(output), status, False


class _NoWorkingDirectory(Exception):
    pass


class _WorkingDirectory:  # a class, not @contextmanager: contextlib is not imported on the hot paths
    """Spawn in `cwd`: posix_spawn has no chdir action in Python, so the caller (single-threaded: create,
    start, delete, the container init) steps into it for the spawn and comes back to where it was."""

    def __init__(self, cwd: str | None) -> None:
        self.cwd = cwd
        self.back = -1

    def __enter__(self) -> None:
        if self.cwd is None:
            return
        try:
            self.back = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            self.back = -1  # ours is unreachable (a user namespace's root): stay where the hook ran
        try:
            os.chdir(self.cwd)
        except OSError as err:
            self.__exit__()
            raise _NoWorkingDirectory(err.strerror) from None

    def __exit__(self, *exc: object) -> None:
        if self.back >= 0:
            try:
                os.fchdir(self.back)
            finally:
                os.close(self.back)
                self.back = -1


def _close(fds: dict[str, int], *names: str) -> None:
    for name in names:
        if fds[name] >= 0:
            os.close(fds[name])
            fds[name] = -1


def _drain(fd: int, output: bytearray) -> bool:
    """Read what is available without blocking, keeping the tail. False at EOF."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        output += chunk
        if len(output) > OUTPUT_KEEP:
            del output[: len(output) - OUTPUT_KEEP]


def _check(
    status: int | None,
    timed_out: bool,
    timeout: float | None,
    output: bytes,
    *,
    label: str,
    stage: str,
    path: str,
) -> None:
    assert status is not None
    exit_status = signal_number = None
    if timed_out:
        reason = f"timed out after {timeout:g}s (its process group was killed)"
    elif status == STATUS_LOST:
        reason = "its exit status was lost (reaped elsewhere, or SIGCHLD is ignored)"
    elif os.WIFEXITED(status):
        exit_status = os.WEXITSTATUS(status)
        if exit_status == 0:
            return
        reason = f"exited with status {exit_status}"
    else:
        signal_number = os.WTERMSIG(status)
        import signal  # the failure path only: for the signal's name

        try:
            name = signal.Signals(signal_number).name
        except ValueError:
            name = str(signal_number)
        reason = f"killed by signal {name}"
    message = f"{label}: {reason}"
    folded = fold_output(output)
    if folded:
        message += f"; output: {folded}"
    raise HookError(
        message,
        stage=stage,
        path=path,
        exit_status=exit_status,
        signal_number=signal_number,
        timed_out=timed_out,
        output=output,
    )


def fold_output(output: bytes, limit: int = MESSAGE_OUTPUT) -> str:
    """The hook's output as one bounded line: lines stripped and joined with ' | ', the tail kept."""
    text = output.decode("utf-8", "replace")
    lines = ("".join(ch if ch.isprintable() else " " for ch in line).strip() for line in text.splitlines())
    folded = " | ".join(line for line in lines if line)
    if len(folded) > limit:
        folded = "..." + folded[-(limit - 3) :]
    return folded


def _pipe() -> tuple[int, int]:
    """A close-on-exec pipe whose ends are above 0-2, so dup2-ing them onto the child's stdio cannot clobber
    each other even when the runtime itself runs with stdin/stdout/stderr closed."""
    return tuple(_above_stdio(fd) for fd in os.pipe())  # type: ignore[return-value]


def _above_stdio(fd: int) -> int:
    if fd > 2:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return moved


def _inheritable_fds() -> list[int]:
    """Descriptors above 2 that would survive exec; the child closes them. Best effort without /proc."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    fds = []
    for name in names:
        fd = int(name)
        if fd <= 2:
            continue
        try:
            if os.get_inheritable(fd):
                fds.append(fd)
        except OSError:  # the directory's own descriptor, closed by now
            pass
    return fds


def _pidfd_open(pid: int) -> int:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # kernel < 5.3, or seccomp said no: fall back to the tick
        return -1


def _kill_group(pid: int) -> None:
    # The hook leads its group (setsid), so its pgid is its pid. Kill the group while the hook is still
    # unreaped: a zombie leader keeps the pid and the pgid from being reused by someone else.
    for kill, target in ((os.killpg, pid), (os.kill, pid)):  # os.kill: in case it left its own group
        try:
            kill(target, _signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # gone already (contextlib: not worth its import)
            continue


def _reap(pid: int) -> int:
    status = reap(pid)
    return STATUS_LOST if status is None else status
