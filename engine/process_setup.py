"""Finishing a container process: one module for the container's init (engine/init.py) and `engine exec`'s process
(engine/exec.py), as runc shares finalizeNamespace, setupConsole and ApplyProfile between its two init paths.

The steps, in the order both callers take them:
    begin_child()           first thing in a forked child: oomScoreAdj, non-dumpable, (parent death signal),
                            every fd of the engine's closed
    enter_namespaces()      setns into namespaces opened beforehand: user first, mount last
    become_namespace_root() root of the user namespace just entered
    ...                     (the init: mounts, pivot_root; exec: nothing more)
    prepare_exec()          process.env (HOME from the container's /etc/passwd), cwd entered (made if missing),
                            args[0] found through PATH, rlimits
    lsm.apply()             AppArmor/SELinux labels for the coming execve (engine/lsm.py)
    exec_as_the_process()   personality, scheduler, I/O priority, CPU affinity, seccomp, user, capabilities,
                            no_new_privs in the order that lets each step still be allowed; startContainer hooks
                            (the init); Python's signal dispositions undone; the execve, through the trampoline

Everything after pivot_root (the init) or setns(mnt) (exec) runs where the engine's own files are out of sight:
all that is used here is imported at the top of this module, which both callers import before they fork.
Nothing here may import lazily (tests/integration/test_late_imports.py).
"""

from __future__ import annotations

import _signal  # not signal: its enum wrappers import enum (~1.5 ms of create)
import _socket  # not socket (enum, selectors: ~2 ms)
import errno
import gc
import os
import stat

from engine.errors import EngineError, suppress
from engine.linux import kernel, scm
from engine.linux import syscalls as sc
from engine.linux.paths import O_PATH, RESOLVE_NO_MAGICLINKS, mkdir_all_in_root, open_in_root, openat2
from engine.linux.syscalls import AT_FDCWD
from engine.linux.trampoline import Trampoline
from engine.rootless import hooks as rootless_hooks
from state import jsonio

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Literal, TypedDict

    from engine.linux.seccomp import FilterPlan
    from engine.spec.typed import Linux, Process, Seccomp

    class ProcessConfig(TypedDict, total=False):
        """What a container process is finished from: the container's init passes its whole config (an
        engine.spec.typed.Spec), `engine exec` {"linux": the container's, "process": its own}."""

        process: Process
        linux: Linux


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The order namespaces are entered in. The user namespace first: once in it we hold every capability over the
# namespaces it owns (and none over the host's). The mount namespace last: setns(mnt) moves our root and cwd
# into the container, so every other namespace file must have been opened (and joined) by then.
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


class SetupError(EngineError):
    """A setup step failed; the message is what the user sees."""


def warn(message: str) -> None:
    """A warning from a container process: one line on its stderr (after create returned, the container's own,
    as runc's; exec's process: the caller's)."""
    with suppress(OSError):
        os.write(2, f"engine: warning: {message}\n".encode())


def begin_child(process: Process, keep: set[int], keep_below: int, parent_pid: int | None = None) -> None:
    """First thing in a child forked to enter the container (create's intermediate, exec's joiner):

    - process.oomScoreAdj, while our /proc/self is still ours to write (engine/rootless/hooks.py); inherited;
    - non-dumpable: while we are the host's interpreter near the container, nothing there may open our
      /proc/<pid>/exe, fds or memory (CVE-2019-5736); kept until the last execve;
    - with parent_pid (exec): killed if our parent dies, and gone at once if it already has;
    - every fd of the engine's closed but stdio, --preserve-fds (below keep_below) and `keep`, before anything
      resolves a container path (CVE-2024-21626)."""
    rootless_hooks.apply_oom_score_adj_early(process)
    kernel.KERNEL.set_dumpable(False)
    if parent_pid is not None:
        kernel.KERNEL.set_parent_death_signal(_signal.SIGKILL)
        if os.getppid() != parent_pid:
            os._exit(1)
    gc.freeze()  # objects from before the fork must never be collected here: they would close reused fd numbers
    close_fds(keep_below=keep_below, keep=keep)


def enter_namespaces(fds: list[tuple[str, int]], where: Callable[[str], str]) -> bool:
    """setns into each (spec type, fd) in JOIN_ORDER; True if one was a user namespace. The caller opened every
    fd first (after setns(user) the host's files may not be ours to open, after setns(mnt) not in sight) and
    closes them. where(type) names the namespace in an error."""
    joined_user = False
    for ns_type, fd in sorted(fds, key=lambda entry: JOIN_ORDER.index(entry[0])):
        try:
            kernel.KERNEL.setns(fd, sc.NAMESPACES[ns_type][0])
        except OSError as err:
            hint = " (is it a namespace of that type?)" if err.errno == errno.EINVAL else ""
            raise SetupError(f"{where(ns_type)}: cannot join: {err.strerror}{hint}") from None
        joined_user = joined_user or ns_type == "user"
    return joined_user


def become_namespace_root() -> None:
    """Root of the user namespace we just made or joined: ids that are mapped there."""
    try:
        kernel.KERNEL.set_ids(0, 0)
    except OSError as err:
        raise SetupError(
            f"cannot become root in the container's user namespace: {err.strerror}"
            " (is container id 0 mapped in linux.uidMappings/gidMappings?)"
        ) from None
    kernel.KERNEL.set_dumpable(False)  # a uid change resets it to fs.suid_dumpable: say it again


def prepare_exec(process: Process) -> tuple[dict[str, str], str]:
    """Inside the container's root: (the environment, the executable), cwd entered and rlimits set. Errors here
    fail create (or exec) rather than start."""
    env = environment(process)
    enter_cwd(process.get("cwd") or "/")
    executable = find_executable(process["args"][0], env.get("PATH", DEFAULT_PATH))
    if process.get("rlimits"):
        kernel.KERNEL.apply_rlimits(process["rlimits"])
    return env, executable


def exec_as_the_process(
    cfg: ProcessConfig,
    state: dict[str, Any],
    seccomp_plan: FilterPlan | None,
    notify_sock: _socket.socket | None,
    trampoline: Trampoline,
    env: dict[str, str],
    *,
    process_pid: int | None = None,
    cpu_affinity: Literal["initial", "final"] = "initial",
    before_exec: Callable[[], None] | None = None,
    exec_gid: int | None = None,
    blocked_signals: tuple[int, ...] = (),
) -> None:
    """Become the process (become_the_process), run before_exec (the init's startContainer hooks: runc's order,
    as the container's process, with its user, capabilities and seccomp filter), exec cfg's process.args through
    the trampoline. Returns only by raising. exec_gid and blocked_signals: for the trampoline that waits for
    `start` (engine/init.py), see become_the_process and restore_signals."""
    become_the_process(
        cfg, state, seccomp_plan, notify_sock, process_pid=process_pid, cpu_affinity=cpu_affinity, exec_gid=exec_gid
    )
    with suppress(OSError):  # a user switch resets it; a seccomp filter may forbid prctl by now
        kernel.KERNEL.set_dumpable(False)
    if before_exec is not None:
        before_exec()
    restore_signals(blocked_signals)
    trampoline.execve(cfg["process"]["args"], env)


def become_the_process(
    cfg: ProcessConfig,
    state: dict[str, Any],
    seccomp_plan: FilterPlan | None,
    notify_sock: _socket.socket | None,
    *,
    process_pid: int | None = None,
    cpu_affinity: Literal["initial", "final"] = "initial",
    exec_gid: int | None = None,
) -> None:
    """The last steps before exec: process attributes, user and capabilities, no_new_privs, seccomp.

    cfg:          {"linux": the container's linux section, "process": the process to become}
    state:        the container's state (runtime.md), sent to a seccomp agent with the notify fd
    process_pid:  the pid the seccomp agent is told about; the state's pid (the init itself) by default
    cpu_affinity: which execCPUAffinity list applies here: the init's "initial" one; `engine exec` applies
                  "initial" before joining the container's cgroup and "final" here, after it
    exec_gid:     the effective gid kept until the trampoline that waits for `start` execs (the init's fast
                  path, engine/linux/trampoline.py); None: the user's gid at once
    Warnings (capabilities that cannot be granted, personality flags) go to stderr (warn()).
    """
    linux = cfg.get("linux", {})
    process = cfg["process"]
    if linux.get("personality"):
        kernel.KERNEL.apply_personality(linux["personality"], warn)
    if process.get("scheduler"):
        kernel.KERNEL.apply_scheduler(process["scheduler"])
    if process.get("ioPriority"):
        kernel.KERNEL.apply_io_priority(process["ioPriority"])
    if process.get("execCPUAffinity"):
        kernel.KERNEL.apply_cpu_affinity(process["execCPUAffinity"], cpu_affinity == "initial")
    no_new_privs = bool(process.get("noNewPrivileges"))
    # Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while we still have it (as runc).
    if seccomp_plan is not None and not no_new_privs:
        load_seccomp(seccomp_plan, linux["seccomp"], state, notify_sock, process_pid)
    # config.md: a capability that "cannot be mapped to a relevant kernel interface, or cannot be granted
    # otherwise MUST be logged as a warning": an unknown name warns, as runc does.
    kernel.KERNEL.apply_user_and_capabilities(process.get("user", {}), process.get("capabilities"), warn, exec_gid)
    if no_new_privs:
        kernel.KERNEL.set_no_new_privileges()
    if seccomp_plan is not None and no_new_privs:
        load_seccomp(seccomp_plan, linux["seccomp"], state, notify_sock, process_pid)


def connect_seccomp_listener(cfg: ProcessConfig) -> _socket.socket | None:
    """The seccomp agent's socket is a host path: connect while we can still see it; send after loading."""
    seccomp = cfg.get("linux", {}).get("seccomp")
    path = seccomp.get("listenerPath") if seccomp else None
    if not path:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise SetupError(f"linux.seccomp.listenerPath: {path}: {err.strerror}") from None
    return sock


def load_seccomp(
    plan: FilterPlan,
    seccomp: Seccomp,
    state: dict[str, Any],
    notify_sock: _socket.socket | None,
    process_pid: int | None = None,
) -> None:
    fd = kernel.KERNEL.load_seccomp(plan)
    if fd is None:
        return
    if notify_sock is None:
        os.close(fd)
        raise SetupError("linux.seccomp: SCMP_ACT_NOTIFY needs listenerPath")
    from engine.linux import seccomp as libseccomp  # loaded already by whoever compiled the plan

    message = libseccomp.container_process_state(
        state,
        pid=state["pid"] if process_pid is None else process_pid,
        metadata=seccomp.get("listenerMetadata"),
        oci_version=state["ociVersion"],
    )
    payload = jsonio.dumps(message).encode()
    notify_sock.sendmsg([payload], scm.rights(fd))
    notify_sock.close()
    os.close(fd)


def environment(process: Process) -> dict[str, str]:
    """process.env as a dict: a later KEY=... overrides an earlier one (so `exec --env` wins)."""
    env: dict[str, str] = {}
    for entry in process.get("env", []):
        key, sep, value = entry.partition("=")
        if sep:
            env[key] = value
    if "HOME" not in env:
        env["HOME"] = home_of(int(process.get("user", {}).get("uid", 0)))
    return env


def home_of(uid: int) -> str:
    """runc sets HOME from the container's /etc/passwd when the config does not."""
    try:
        with open("/etc/passwd") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


MAGIC_LINK = "it leads through a magic link (/proc/<pid>/fd, cwd, root, exe...), which can point out of the container"


def enter_cwd(cwd: str) -> None:
    """chdir into process.cwd, resolved inside the container's root (our root by now) without magic links, and
    created if missing (as runc does). Call with no fd of the engine's open: CVE-2024-21626 made cwd
    /proc/self/fd/N, a leaked fd of the host's. A cwd that ends up outside the root is an error."""
    if not os.path.isabs(cwd):
        raise SetupError(f"process.cwd: {cwd!r} is not an absolute path")
    root = os.open("/", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = open_in_root(root, cwd, O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            fd = mkdir_all_in_root(root, cwd)
        try:
            os.fchdir(fd)
        finally:
            os.close(fd)
    except OSError as err:
        why = MAGIC_LINK if err.errno == errno.ELOOP else err.strerror
        raise SetupError(f"process.cwd: {cwd}: {why}") from None
    finally:
        os.close(root)
    try:
        here = os.getcwd()
    except FileNotFoundError:  # glibc's answer for the kernel's "(unreachable)/..."
        here = "(unreachable)"
    if not here.startswith("/"):
        raise SetupError(f"process.cwd: {cwd}: it is outside the container's root")


def find_executable(name: str, path: str) -> str:
    """process.args[0] through PATH, as execvp would, inside the container; never through a magic link
    (/proc/self/exe is the engine's own interpreter until the exec)."""
    candidates = [name] if "/" in name else [os.path.join(directory or ".", name) for directory in path.split(":")]
    for candidate in candidates:
        try:
            fd = openat2(AT_FDCWD, candidate, O_PATH, 0, RESOLVE_NO_MAGICLINKS)
        except OSError as err:
            if err.errno == errno.ELOOP and "/" in name:
                raise SetupError(f"process.args[0]: {name!r}: {MAGIC_LINK}") from None
            continue
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        if regular and os.access(candidate, os.X_OK):
            return candidate
    if "/" in name:
        raise SetupError(f"process.args[0]: {name!r}: no such executable in the container")
    raise SetupError(f"process.args[0]: {name!r}: executable file not found in $PATH ({path})")


def close_fds(keep_below: int, keep: set[int]) -> None:
    """Nothing of the engine's may leak into the container: close every fd but stdio and --preserve-fds."""
    for fd in range(3, keep_below):
        with suppress(OSError):
            os.set_inheritable(fd, True)
    low = keep_below
    for fd in sorted(k for k in keep if k >= keep_below):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


# Terminating signals that may arrive while the init waits for `start`; the init handles them (pid 1 of a pid
# namespace drops signals whose action is the default), so they are among those to reset before exec.
WAIT_SIGNALS = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2)


def restore_signals(blocked: tuple[int, ...] = ()) -> None:
    """exec keeps ignored signals ignored: undo Python's SIGPIPE/SIGXFSZ ignores and our handlers. `blocked` stay
    blocked across the execve, and are blocked before their handler goes: pid 1 of a pid namespace drops a signal
    left at its default action, but keeps a blocked one pending (for the handlers of the trampoline that waits)."""
    if blocked:
        _signal.pthread_sigmask(_signal.SIG_BLOCK, blocked)
    for sig in (*WAIT_SIGNALS, _signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(sig, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, set(blocked))
