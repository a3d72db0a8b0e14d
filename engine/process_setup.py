"""Finishing a container process before execve: shared by the container's init and by `engine exec`.

Both run these steps inside the container (after pivot_root for the init, after setns for exec), where the
engine's own files are no longer visible: everything used here is imported at the top of this module, and
both callers import this module before they enter the container. Nothing here may import lazily.

The steps, in the order the callers use them:
    environment()           process.env as a dict, HOME from the container's /etc/passwd when unset
    enter_cwd()             process.cwd (created if missing, as runc's finalizeNamespace does)
    find_executable()       process.args[0] through the process's PATH, inside the container
    close_fds()             nothing of the engine's leaks: stdio, --preserve-fds and the caller's keepers only
    become_the_process()    personality, scheduler, I/O priority, CPU affinity, seccomp, user, capabilities,
                            no_new_privs, in the order that lets each step still be allowed
    restore_signals()       undo Python's signal dispositions, which execve would otherwise pass on
"""

from __future__ import annotations

import array
import contextlib
import errno
import json
import os
import signal
import socket
import stat
from collections.abc import Callable
from typing import Any, Literal

from engine.errors import EngineError
from engine.linux import capabilities, process_attrs
from engine.linux import seccomp as libseccomp
from engine.linux.paths import O_PATH, RESOLVE_NO_MAGICLINKS, mkdir_all_in_root, open_in_root, openat2
from engine.linux.syscalls import AT_FDCWD

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SetupError(EngineError):
    """A setup step failed; the message is what the user sees."""


def become_the_process(
    cfg: dict[str, Any],
    state: dict[str, Any],
    seccomp_plan: Any,
    notify_sock: socket.socket | None,
    *,
    process_pid: int | None = None,
    cpu_affinity: Literal["initial", "final"] = "initial",
    warn: Callable[[str], None] | None = None,
) -> None:
    """The last steps before exec: process attributes, user and capabilities, no_new_privs, seccomp.

    cfg:          {"linux": the container's linux section, "process": the process to become}
    state:        the container's state (runtime.md), sent to a seccomp agent with the notify fd
    process_pid:  the pid the seccomp agent is told about; the state's pid (the init itself) by default
    cpu_affinity: which execCPUAffinity list applies here: the init's "initial" one; `engine exec` applies
                  "initial" before joining the container's cgroup and "final" here, after it
    warn:         where capability warnings go (capabilities' default: a RuntimeWarning)
    """
    linux = cfg.get("linux") or {}
    process = cfg["process"]
    if linux.get("personality"):
        process_attrs.apply_personality(linux["personality"])
    if process.get("scheduler"):
        process_attrs.apply_scheduler(process["scheduler"])
    if process.get("ioPriority"):
        process_attrs.apply_io_priority(process["ioPriority"])
    if process.get("execCPUAffinity"):
        process_attrs.apply_exec_cpu_affinity(process["execCPUAffinity"], initial=cpu_affinity == "initial")
    no_new_privs = bool(process.get("noNewPrivileges"))
    # Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while we still have it (as runc).
    if seccomp_plan is not None and not no_new_privs:
        load_seccomp(seccomp_plan, linux["seccomp"], state, notify_sock, process_pid)
    # config.md: a capability that "cannot be mapped to a relevant kernel interface, or cannot be granted
    # otherwise MUST be logged as a warning": an unknown name warns, as runc does.
    capabilities.apply_user_and_capabilities(
        process.get("user") or {}, process.get("capabilities"), warn=warn, unknown="warn"
    )
    if no_new_privs:
        capabilities.set_no_new_privileges()
    if seccomp_plan is not None and no_new_privs:
        load_seccomp(seccomp_plan, linux["seccomp"], state, notify_sock, process_pid)


def connect_seccomp_listener(cfg: dict[str, Any]) -> socket.socket | None:
    """The seccomp agent's socket is a host path: connect while we can still see it; send after loading."""
    seccomp = (cfg.get("linux") or {}).get("seccomp") or {}
    path = seccomp.get("listenerPath")
    if not path:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise SetupError(f"linux.seccomp.listenerPath: {path}: {err.strerror}") from None
    return sock


def load_seccomp(
    plan: Any,
    seccomp: dict[str, Any],
    state: dict[str, Any],
    notify_sock: socket.socket | None,
    process_pid: int | None = None,
) -> None:
    fd = libseccomp.load_plan(plan)
    if fd is None:
        return
    if notify_sock is None:
        os.close(fd)
        raise SetupError("linux.seccomp: SCMP_ACT_NOTIFY needs listenerPath")
    message = libseccomp.container_process_state(
        state,
        pid=state["pid"] if process_pid is None else process_pid,
        metadata=seccomp.get("listenerMetadata"),
        oci_version=state["ociVersion"],
    )
    payload = json.dumps(message).encode()
    notify_sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
    notify_sock.close()
    os.close(fd)


def environment(process: dict[str, Any]) -> dict[str, str]:
    """process.env as a dict: a later KEY=... overrides an earlier one (so `exec --env` wins)."""
    env: dict[str, str] = {}
    for entry in process.get("env") or []:
        key, sep, value = entry.partition("=")
        if sep:
            env[key] = value
    if "HOME" not in env:
        env["HOME"] = home_of(int((process.get("user") or {}).get("uid", 0)))
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
        with contextlib.suppress(OSError):
            os.set_inheritable(fd, True)
    low = keep_below
    for fd in sorted(k for k in keep if k >= keep_below):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


# Terminating signals that may arrive while the init waits for `start`; the init handles them (pid 1 of a pid
# namespace drops signals whose action is the default), so they are among those to reset before exec.
WAIT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def restore_signals() -> None:
    """exec keeps ignored signals ignored: undo Python's SIGPIPE/SIGXFSZ ignores and our handlers."""
    for sig in (*WAIT_SIGNALS, signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
