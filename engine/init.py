"""The container side of `engine create`: runs in forked children of the create process and never returns.

    engine create ──fork──> intermediate: join/unshare namespaces ──fork──> init (pid 1 of the new pid ns)
                                  └─ reports the init's pid, exits (so the init re-parents to the subreaper)

The init sets up the filesystem, tells `engine create` it is ready, then blocks opening the exec fifo until
`engine start` opens the other end; it then runs startContainer hooks, drops privileges and execs the user's
program. Errors before the fifo go back over the channel; after it, into the fifo for `start` to read.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import traceback
from dataclasses import dataclass, field
from typing import Any

from engine import channel
from engine.errors import EngineError
from engine.linux import syscalls as sc
from engine.setup import rootfs as rootfs_setup

PR_SET_DUMPABLE = 4
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class InitPlan:
    """Everything the init needs, resolved by `engine create` before forking."""

    container_id: str
    bundle: str
    rootfs: str
    config: dict[str, Any]  # config.json as validated (JSON shape, camelCase keys)
    fifo_path: str
    no_pivot: bool = False
    preserve_fds: int = 0
    console_socket: str | None = None
    namespace_flags: int = 0
    namespace_paths: list[tuple[str, str]] = field(default_factory=list)  # (type, path) to setns into


class SetupError(Exception):
    """A setup step failed; the message is what the user sees."""


def _fail(chan: socket.socket, err: BaseException) -> None:
    message = str(err) if isinstance(err, SetupError | OSError | ValueError | EngineError) else repr(err)
    if os.environ.get("ENGINE_DEBUG_INIT"):
        message += " | " + " ".join(traceback.format_exception(err)).replace("\n", " ")
    with contextlib.suppress(OSError):
        channel.send(chan, {"type": "error", "message": message})


def intermediate(chan: socket.socket, plan: InitPlan) -> None:
    """First child: enter the namespaces, fork the init into them, report its pid, exit."""
    try:
        sc.prctl(PR_SET_DUMPABLE, 0)  # nothing in the container may ptrace or read us while we are engine
        channel.expect(chan, "go")  # the engine has placed us in the container's cgroup
        join_namespaces(plan.namespace_paths)
        if plan.namespace_flags:
            sc.unshare(plan.namespace_flags)
        pid = os.fork()
        if pid == 0:
            container_init(chan, plan)
        channel.send(chan, {"type": "pid", "pid": pid})
        os._exit(0)
    except BaseException as err:
        _fail(chan, err)
        os._exit(1)


def join_namespaces(paths: list[tuple[str, str]]) -> None:
    # A user namespace must be joined first: it decides what we may do in the others.
    for ns_type, path in sorted(paths, key=lambda item: item[0] != "user"):
        flag = sc.NAMESPACES[ns_type][0]
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise SetupError(f"linux.namespaces: {ns_type} path {path}: {err.strerror}") from None
        try:
            sc.setns(fd, flag)
        except OSError as err:
            raise SetupError(
                f"linux.namespaces: {ns_type} path {path}: cannot join: {err.strerror}"
                + (" (is it a namespace of that type?)" if err.errno == 22 else "")
            ) from None
        finally:
            os.close(fd)


def container_init(chan: socket.socket, plan: InitPlan) -> None:
    """pid 1 of the container: set up, wait for start, exec. Never returns."""
    fifo_fd = -1
    try:
        cfg = plan.config
        linux = cfg.get("linux") or {}
        process = cfg["process"]
        rootfs_setup.set_root_propagation(linux.get("rootfsPropagation"))
        rootfs_setup.bind_rootfs(plan.rootfs)
        own_cgroup_ns = any(ns["type"] == "cgroup" for ns in linux.get("namespaces") or [])
        rootfs_setup.setup_mounts(plan.rootfs, cfg.get("mounts") or [], plan.bundle, own_cgroup_ns)

        channel.send(chan, {"type": "hooks"})
        channel.expect(chan, "continue")

        # Opened before pivot_root hides the host path; reopened for writing through /proc/self/fd later.
        fifo_path_fd = os.open(plan.fifo_path, os.O_PATH | os.O_CLOEXEC)
        rootfs_setup.pivot_into(plan.rootfs, plan.no_pivot)
        if (cfg.get("root") or {}).get("readonly"):
            rootfs_setup.make_root_readonly()
        if cfg.get("hostname") is not None:
            _set_name("hostname", cfg["hostname"])
        if cfg.get("domainname") is not None:
            _set_name("domainname", cfg["domainname"])
        for key, value in (linux.get("sysctl") or {}).items():
            _write_sysctl(key, value)
        env = _environment(process)
        _enter_cwd(process.get("cwd") or "/")
        executable = find_executable(process["args"][0], env.get("PATH", DEFAULT_PATH))
        if "oomScoreAdj" in process:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(process["oomScoreAdj"]))

        channel.send(chan, {"type": "ready"})
        channel.expect(chan, "go")
        chan.close()
        _close_fds(keep_below=3 + plan.preserve_fds, keep={fifo_path_fd})
        _exit_on_signals()
        # Blocks until `engine start` opens the read end.
        fifo_fd = os.open(f"/proc/self/fd/{fifo_path_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.close(fifo_path_fd)
        os.write(fifo_fd, b"0")

        _switch_user(process.get("user") or {})
        _restore_signals()
        os.execve(executable, process["args"], env)
    except BaseException as err:
        if fifo_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(fifo_fd, f"exec {process['args'][0]!r}: {err}".encode()[:4000])
        else:
            _fail(chan, err)
        os._exit(127 if fifo_fd >= 0 else 1)


def _set_name(which: str, value: str) -> None:
    from engine.linux.libc import check, libc

    data = value.encode()
    func = libc.sethostname if which == "hostname" else libc.setdomainname
    try:
        check(func(data, len(data)), f"set {which}")
    except OSError as err:
        raise SetupError(
            f"{which}: cannot set {value!r}: {err.strerror} (does the container have its own uts namespace?)"
        ) from None


def _write_sysctl(key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as err:
        raise SetupError(f"linux.sysctl.{key}: cannot write {value!r}: {err.strerror}") from None


def _environment(process: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in process.get("env") or []:
        key, sep, value = entry.partition("=")
        if sep:
            env[key] = value
    if "HOME" not in env:
        env["HOME"] = _home_of(int((process.get("user") or {}).get("uid", 0)))
    return env


def _home_of(uid: int) -> str:
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


def _enter_cwd(cwd: str) -> None:
    if not os.path.isabs(cwd):
        raise SetupError(f"process.cwd: {cwd!r} is not an absolute path")
    try:
        os.makedirs(cwd, mode=0o755, exist_ok=True)
        os.chdir(cwd)
    except OSError as err:
        raise SetupError(f"process.cwd: {cwd}: {err.strerror}") from None


def find_executable(name: str, path: str) -> str:
    if "/" in name:
        if os.path.isfile(name) and os.access(name, os.X_OK):
            return name
        raise SetupError(f"process.args[0]: {name!r}: no such executable in the container")
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise SetupError(f"process.args[0]: {name!r}: executable file not found in $PATH ({path})")


def _close_fds(keep_below: int, keep: set[int]) -> None:
    """Nothing of the engine's may leak into the container: close every fd but stdio and --preserve-fds."""
    for fd in range(3, keep_below):
        with contextlib.suppress(OSError):
            os.set_inheritable(fd, True)
    low = keep_below
    for fd in sorted(k for k in keep if k >= keep_below):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


# Terminating signals that may arrive while we wait for `start`. As pid 1 of a pid namespace, a signal with the
# default action is dropped, so we install handlers that exit the way the default action would have.
_WAIT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _exit_on_signals() -> None:
    for sig in _WAIT_SIGNALS:
        signal.signal(sig, lambda number, frame: os._exit(128 + number))


def _restore_signals() -> None:
    """exec keeps ignored signals ignored: undo Python's SIGPIPE/SIGXFSZ ignores and our handlers."""
    for sig in (*_WAIT_SIGNALS, signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _switch_user(user: dict[str, Any]) -> None:
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    for name, value in (("uid", uid), ("gid", gid)):
        if value == 0xFFFFFFFF:
            raise SetupError(f"process.user.{name}: {value} ((uid_t)-1) is not a valid id")
    try:
        os.setgroups([int(g) for g in user.get("additionalGids") or []])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as err:
        raise SetupError(f"process.user: cannot switch to uid {uid} gid {gid}: {err.strerror}") from None
    if "umask" in user:
        os.umask(int(user["umask"]))
