"""`engine exec`: run a new process inside a created or running container (runc exec).

    engine exec ─fork─> joiner: non-dumpable, fds closed ─[parent: execCPUAffinity.initial, cgroup]─ InCgroup
       │                 open /proc/<init>/ns/*, then setns: user first ... mnt last
       │                 fork ─> process (pid ns applies to children only, so this one is in the container's)
       │                 report its host pid, exit: the process re-parents to us (we are a child subreaper)
       │<─ ProcessForked(pid) ─┘
       ├─ Adopted(pid) ─> process: cwd, env, console, rlimits, LSM labels, fds, seccomp, user, caps; execve
       └─ its channel ends (close-on-exec): exec'd. Failed(message) instead: one line, exit 255.
          Then: --detach returns; otherwise forward signals, wait, exit with its status (128+n if killed by n).

The messages, and why each child has a channel of its own, are drawn in engine/channel.py.

CVE-2019-5736: while the engine is inside a container it is still the host's interpreter, so a container
process that could open /proc/<pid>/exe of it would hold the host's binary. Both children are made
non-dumpable before touching a namespace and stay so until execve: /proc/<pid>/exe, fd/, cwd, root,
environ, mem of a non-dumpable process are refused (EACCES) to anyone without CAP_SYS_PTRACE in the user
namespace the engine was started in. The joiner also closes every fd it does not need before the first
setns, so the window holds nothing of the host's but the channel to us. docs/exec.md has the details and
what this does not cover (a container granted CAP_SYS_PTRACE without a user namespace of its own).

Everything the children run after setns(mnt) must already be imported: the engine's files are out of sight
then. This module imports it all at the top (engine.console, when a terminal is asked for, before forking).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import socket
from typing import Any

from engine import channel, lsm
from engine.channel import Channel
from engine.errors import ConfigError, EngineError, one_line
from engine.linux import capabilities, kernel, process_attrs, trampoline
from engine.linux import seccomp as libseccomp
from engine.linux import syscalls as sc
from engine.linux.procfs import ProcFS
from engine.log import Log
from engine.pidfile import write_pid_file
from engine.process_setup import (
    JOIN_ORDER,
    SetupError,
    become_namespace_root,
    begin_child,
    close_fds,
    connect_seccomp_listener,
    enter_namespaces,
    exec_as_the_process,
    prepare_exec,
)
from engine.record import field, record
from engine.signals import Forwarder
from state import process as proc
from state.record import ContainerRecord
from state.rules import CREATED, PAUSED, RUNNING
from state.store import CONFIG_FILE, Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket
    from typing import Literal

    from engine.linux.capability_names import CapabilitySet
    from engine.linux.seccomp import FilterPlan
    from engine.spec.typed import Capabilities, Linux, Process, Spec, User

# With --process, runc takes the whole process from the file: these flags only shape the config-based one.
_FLAGS_IGNORED_WITH_PROCESS = {
    "env": "--env",
    "cwd": "--cwd",
    "user": "--user",
    "additional_gids": "--additional-gids",
    "caps": "--cap",
    "no_new_privs": "--no-new-privs",
    "apparmor": "--apparmor",
    "process_label": "--process-label",
}


class ExecError(EngineError):
    """`engine exec` failed before the process ran. Exit code 255, as runc's exec: the process's own exit
    status (0 to 255, 128+n when killed) stays distinguishable from most of the engine's failures."""

    exit_code = 255


@record
class ExecOptions:
    """runc exec's flags (engine/cli.py)."""

    container_id: str
    command: list[str] = field(default_factory=list)
    process_path: str | None = None
    tty: bool = False
    console_socket: str | None = None
    detach: bool = False
    pid_file: str | None = None
    cwd: str | None = None
    env: list[str] = field(default_factory=list)
    user: str | None = None
    additional_gids: list[str] = field(default_factory=list)
    caps: list[str] = field(default_factory=list)
    no_new_privs: bool = False
    preserve_fds: int = 0
    apparmor: str | None = None
    process_label: str | None = None
    cgroup: list[str] = field(default_factory=list)  # --cgroup [controller:]path (engine/cgroups/exec_join.py)
    ignore_paused: bool = False


@record
class ExecPlan:
    """Everything the children need, resolved before forking (they cannot read the host's files later)."""

    container_id: str
    init_pid: int
    init_start_time: int | None
    process: Process  # config.md "process", JSON shape
    linux: Linux  # the container's linux section: seccomp, personality
    state: dict[str, Any]  # the container's state, for a seccomp agent
    parent_pid: int
    preserve_fds: int = 0
    seccomp_plan: FilterPlan | None = None
    notify_sock: _socket.socket | None = None
    console_sock: socket.socket | None = None
    labels: lsm.Labels = field(default_factory=lsm.Labels)  # AppArmor/SELinux, as the host can apply them
    proc: ProcFS | None = None  # the joiner's own procfs (host side), used by the process before it execs


@record
class Launched:
    pid: int  # the process, as the host sees it; our child (subreaper) until we exit
    relay_socket: Any = None  # console.ConsoleSocket: we relay the caller's terminal ourselves


# --- The parent: `engine exec` ------------------------------------------------------------------------------


def exec_process(store: Store, options: ExecOptions, log: Log) -> int:
    """Run the process; its exit status (or 0 with --detach). Raises ExecError (one line) on failure."""
    process_json = _load_process_file(options, log) if options.process_path else None
    if process_json is None and not options.command:
        raise ExecError("exec: no command given: name one after the container id, or use --process")
    _check_preserved_fds(options.preserve_fds)
    with store.locked(options.container_id, shared=True) as dir_fd:
        record = store.load(options.container_id, dir_fd)
        status = record.observed_status()
        config = _read_config(dir_fd, options.container_id)
    if status == PAUSED and not options.ignore_paused:
        raise ExecError(f"cannot exec in paused container {options.container_id!r} (--ignore-paused to override)")
    if status not in (CREATED, RUNNING, PAUSED):
        raise ExecError(f"cannot exec in container {options.container_id!r}: it is {status}")
    if process_json is not None:
        process = inherit_from_container(process_json, config.get("process", NO_PROCESS))
    else:
        process = process_from_config(config, options)
    _check_process(process)
    plan = ExecPlan(
        container_id=record.id,
        init_pid=record.pid,
        init_start_time=record.pid_start_time,
        process=process,
        linux=config.get("linux", {}),
        state=record.public_state(status),
        parent_pid=os.getpid(),
        preserve_fds=options.preserve_fds,
    )
    try:
        plan.labels = lsm.check(process, log.warning, where="exec: ")
    except ConfigError as err:
        raise ExecError(str(err)) from None
    # Waiting for the process: its signals are ours to pass on from before it runs (engine/signals.py).
    forwarder = None if options.detach else Forwarder().install()
    try:
        try:
            launched = _launch(plan, record, options, log)
        finally:
            _close_sockets(plan)
        try:
            if options.pid_file:
                write_pid_file(options.pid_file, launched.pid, error=ExecError)
            if forwarder is None:
                return 0
            return _wait(launched, forwarder)
        finally:
            if launched.relay_socket is not None:
                launched.relay_socket.close()
    finally:
        if forwarder is not None:
            forwarder.restore()


def _load_process_file(options: ExecOptions, log: Log) -> Process:
    if options.command:
        raise ExecError(f"exec: give either --process {options.process_path} or a command, not both")
    given = [flag for name, flag in _FLAGS_IGNORED_WITH_PROCESS.items() if getattr(options, name)]
    if given:
        log.warning(f"{', '.join(given)}: ignored with --process (the file describes the whole process, as with runc)")
    from engine.spec.document import load_process  # the spec models, compiled: no pydantic

    process = load_process(options.process_path or "")
    if not process.get("args"):
        raise ExecError(f"{options.process_path}: args: must not be empty")
    return process


# What an `exec --process` file without these fields takes from the container's own process (as runc's
# newInitConfig): the confinement the container was created with must not be lost by leaving a field out.
INHERITED: tuple[Literal["apparmorProfile", "selinuxLabel", "noNewPrivileges", "rlimits"], ...] = (
    "apparmorProfile",
    "selinuxLabel",
    "noNewPrivileges",
    "rlimits",
)
# A config without a process (create refuses one: not from engine's state directory) gives exec nothing.
NO_PROCESS: Process = {"cwd": "/"}


def inherit_from_container(process: Process, container: Process) -> Process:
    process = process.copy()
    for key in INHERITED:
        if process.get(key) in (None, []) and container.get(key) not in (None, []):
            process[key] = copy.deepcopy(container[key])
    return process


def process_from_config(config: Spec, options: ExecOptions) -> Process:
    """The container's own process (config.json as given at create) with the command and runc's flags."""
    process = copy.deepcopy(config.get("process", NO_PROCESS))
    process["args"] = list(options.command)
    process["terminal"] = options.tty  # runc: an exec gets a terminal only with --tty, whatever config says
    process.setdefault("cwd", "/")
    if options.cwd:
        process["cwd"] = options.cwd
    if options.apparmor:
        process["apparmorProfile"] = options.apparmor
    if options.process_label:
        process["selinuxLabel"] = options.process_label
    for entry in options.env:
        if "=" not in entry:
            raise ExecError(f"--env {entry!r}: expected KEY=VALUE")
    process["env"] = [*process.get("env", []), *options.env]  # later entries win (process_setup)
    if options.no_new_privs:
        process["noNewPrivileges"] = True
    given = process.get("user")
    user: User = given.copy() if given else {"uid": 0, "gid": 0}
    if options.user:
        uid, sep, gid = options.user.partition(":")
        user["uid"] = _id(uid, "--user", "uid")
        if sep:
            user["gid"] = _id(gid, "--user", "gid")
    if options.additional_gids:
        gids = [_id(g, "--additional-gids", "gid") for g in options.additional_gids]
        user["additionalGids"] = [*user.get("additionalGids", []), *gids]
    process["user"] = user
    if options.caps:
        process["capabilities"] = _add_capabilities(process.get("capabilities", {}), options.caps)
    return process


def _id(text: str, flag: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ExecError(f"{flag}: {text!r} is not a numeric {what} (only uid[:gid] numbers are supported)") from None
    if not 0 <= value < 0xFFFFFFFF:
        raise ExecError(f"{flag}: {what} {value} is out of range")
    return value


def _add_capabilities(caps: Capabilities, names: list[str]) -> Capabilities:
    """runc's --cap: added to the bounding, effective and permitted sets, and to the ambient set.

    The kernel only lets a capability into the ambient set when it is also inheritable, and runc no longer
    adds --cap to the inheritable set (CVE-2022-29162); we add it to ambient only where it is inheritable,
    which is what the kernel would have let runc's ambient raise do, without a warning per exec.
    """
    out = {name: list(caps.get(name, [])) for name in capabilities.CAP_SETS}
    for raw in names:
        name = raw.upper() if raw.upper().startswith("CAP_") else "CAP_" + raw.upper()
        if name not in capabilities.CAPABILITIES:
            raise ExecError(f"--cap {raw!r}: unknown capability")
        targets: list[CapabilitySet] = ["bounding", "effective", "permitted"]
        targets += ["ambient"] if name in out["inheritable"] else []
        for set_name in targets:
            if name not in out[set_name]:
                out[set_name].append(name)
    result: Capabilities = {}
    for set_name, value in out.items():
        if value or set_name in caps:
            result[set_name] = value
    return result


def _check_process(process: Process) -> None:
    """What can be checked on the host, so that the usual mistakes fail before anything is forked."""
    if not process.get("args"):
        raise ExecError("exec: process.args: must not be empty")
    cwd = process.get("cwd") or "/"
    if not os.path.isabs(cwd):
        raise ExecError(f"exec: process.cwd: {cwd!r} is not an absolute path")
    try:
        capabilities.resolve(process.get("capabilities"), warn=lambda message: None)
    except ValueError as err:
        raise ExecError(f"exec: {err}") from None
    affinity = process.get("execCPUAffinity", {}).get("initial")
    if affinity:
        try:
            process_attrs.parse_cpu_list(affinity, "process.execCPUAffinity.initial")
        except ValueError as err:
            raise ExecError(f"exec: {err}") from None


def _check_preserved_fds(count: int) -> None:
    if count < 0:
        raise ExecError(f"--preserve-fds {count}: must not be negative")
    for fd in range(3, 3 + count):
        try:
            os.fstat(fd)
        except OSError:
            raise ExecError(f"--preserve-fds {count}: fd {fd} is not open") from None


def _read_config(dir_fd: int, container_id: str) -> Spec:
    """The config `engine create` validated and saved in the state directory (never the bundle's: it may have
    changed, or been swapped, since)."""
    try:
        fd = os.open(CONFIG_FILE, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as f:
            config: Spec = json.loads(f.read())
            return config
    except (OSError, ValueError) as err:
        raise ExecError(f"container {container_id!r}: cannot read its config.json: {err}") from None


def _launch(plan: ExecPlan, record: ContainerRecord, options: ExecOptions, log: Log) -> Launched:
    """Fork, join, exec; returns once the process has exec'd. On failure nothing is left running."""
    launched = Launched(pid=0)
    seccomp = plan.linux.get("seccomp")
    try:
        if seccomp:
            # Compiled here, with libseccomp loaded while the host's files are visible (as the init does).
            plan.seccomp_plan = libseccomp.compile_profile(seccomp, warn=log.warning)
            plan.notify_sock = connect_seccomp_listener({"linux": plan.linux})
        launched.relay_socket = _prepare_console(plan, options)
    except (OSError, ValueError, SetupError) as err:
        _close_relay(launched)
        raise ExecError(f"exec: {one_line(err)}") from None
    # The joiner's child (the process) must become ours when the joiner exits, so that we can wait for it.
    sc.set_child_subreaper()
    to_joiner, joiner_end = channel.pair("engine exec", "engine exec's joining child")
    to_process, process_end = channel.pair("engine exec", "the process")
    joiner = os.fork()
    if joiner == 0:
        to_joiner.close()
        to_process.close()
        _joiner(joiner_end, process_end, plan)  # never returns
    joiner_end.close()
    process_end.close()
    # The children have their copies: ours would keep the seccomp agent (which may wait for EOF) and the console
    # receiver from seeing the process's end close.
    _close_sockets(plan)
    try:
        with to_joiner, to_process:  # the protocol: engine/channel.py
            _apply_initial_affinity(joiner, plan.process)
            _join_cgroup(record, joiner, options.cgroup, log)
            to_joiner.send(channel.InCgroup())
            launched.pid = to_joiner.receive(channel.ProcessForked).pid
            proc.reap(joiner)
            joiner = 0
            to_process.send(channel.Adopted(launched.pid))
            try:
                to_process.wait_for_end()  # its end is close-on-exec
            except channel.PeerFailed as err:  # why it did not exec; the trampoline's errno turned into words
                raise ExecError(f"exec in container {plan.container_id!r}: {trampoline.describe(str(err))}") from None
    except BaseException as err:
        for pid in (joiner, launched.pid):
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                proc.reap(pid)
        _close_relay(launched)
        if isinstance(err, OSError | channel.ChannelError):
            if not proc.is_alive(plan.init_pid, plan.init_start_time):  # e.g. fork: ENOMEM in a dead pid ns
                raise ExecError(f"cannot exec in container {plan.container_id!r}: it is stopped") from None
            raise ExecError(f"exec in container {plan.container_id!r}: {one_line(err)}") from None
        raise
    return launched


def _prepare_console(plan: ExecPlan, options: ExecOptions) -> Any:
    """With a terminal: a socket for the process to send its pty master over (runc's checks first).

    --console-socket: the caller's. Otherwise (not detached) a private one whose master we relay. The
    connection is made here, on the host: the process cannot see the socket's path from inside.
    """
    terminal = bool(plan.process.get("terminal"))
    if not terminal and not options.console_socket:
        return None
    try:
        from engine import console, pty  # noqa: F401 (pty: imported before forking, used inside the container)
    except ImportError:
        raise ExecError("exec --tty: not supported yet (engine/console.py is missing)") from None

    console.check_terminal(terminal, options.console_socket, options.detach)
    if options.console_socket:
        plan.console_sock = console.connect_console_socket(options.console_socket)
        return None
    relay_socket = console.ConsoleSocket.temporary()
    try:
        plan.console_sock = console.connect_console_socket(relay_socket.path)
    except BaseException:
        relay_socket.close()
        raise
    return relay_socket


def _close_sockets(plan: ExecPlan) -> None:
    for sock in (plan.notify_sock, plan.console_sock):
        if sock is not None:
            sock.close()


def _close_relay(launched: Launched) -> None:
    if launched.relay_socket is not None:
        launched.relay_socket.close()
        launched.relay_socket = None


def _apply_initial_affinity(pid: int, process: Process) -> None:
    """config.md execCPUAffinity.initial: the affinity before the process joins the container's cgroup."""
    text = process.get("execCPUAffinity", {}).get("initial")
    if text:
        cpus = process_attrs.parse_cpu_list(text, "process.execCPUAffinity.initial")
        try:
            os.sched_setaffinity(pid, cpus)
        except OSError as err:
            raise ExecError(f"process.execCPUAffinity.initial {text!r}: sched_setaffinity: {err.strerror}") from None


def _join_cgroup(record: ContainerRecord, pid: int, sub_cgroups: list[str], log: Log) -> None:
    """Put the joiner (and so the process it forks) into the container's cgroups, before any namespace: every
    hierarchy, or the sub-cgroups --cgroup names (engine/cgroups/exec_join.py). A record without cgroup
    information (none was made) leaves the process in ours, as the init was."""
    if not record.cgroups:
        return
    from engine.cgroups import load_manager

    load_manager(record.cgroups, warn=log.warning).join_exec(pid, sub_cgroups, init_pid=record.pid)


def _wait(launched: Launched, forwarder: Forwarder) -> int:
    """Forward signals to the process and wait for it: its exit status, 128+n if signal n killed it."""
    forwarder.forward_to(launched.pid)
    relay = None
    try:
        if launched.relay_socket is not None:
            from engine.console import ConsoleRelay

            master = launched.relay_socket.receive_master(timeout=10)
            relay = ConsoleRelay(master).start()  # takes SIGWINCH over: resize rather than forward
        _, status = os.waitpid(launched.pid, 0)
    finally:
        if relay is not None:
            relay.close()
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


# --- The children ---------------------------------------------------------------------------------------------


def _joiner(chan: Channel, process_chan: Channel, plan: ExecPlan) -> None:
    """First child: enter the container's namespaces and fork the process into them. Never returns. `chan` is
    ours to talk to `engine exec`; `process_chan` is the process's, only passed on."""
    try:
        keep = {chan.fileno(), process_chan.fileno()}
        keep |= {s.fileno() for s in (plan.notify_sock, plan.console_sock) if s is not None}
        # Non-dumpable and killed with `engine exec` from here until the process execs (CVE-2019-5736, CVE-2016-9962).
        begin_child(plan.process, keep, keep_below=3 + plan.preserve_fds, parent_pid=plan.parent_pid)
        # Our own procfs, made while we are still the host's: the process's writes into /proc (an LSM exec
        # label) go through it, never through the container's /proc (engine.linux.procfs).
        plan.proc = ProcFS.open()
        chan.receive(channel.InCgroup)
        if join_namespaces(plan.init_pid, plan.init_start_time):
            become_namespace_root()
        pid = os.fork()
        if pid == 0:
            chan.close()
            _the_process(process_chan, plan)  # never returns
        process_chan.close()
        chan.send(channel.ProcessForked(pid))
        os._exit(0)
    except BaseException as err:
        chan.fail(err)
        os._exit(1)


def join_namespaces(init_pid: int, init_start_time: int | None) -> bool:
    """setns into every namespace of the init that is not already ours; True if that included a user ns.

    All the fds are opened first: after setns(user) the host's /proc/<init>/ns files are no longer ours to
    open, and after setns(mnt) no longer in sight. A container that shares the host's mount namespace has its
    root by chroot (engine/setup/host_mount_ns.py): we take the init's, last.
    """
    fds: list[tuple[str, int]] = []
    root_fd = -1
    try:
        for ns_type in JOIN_ORDER:
            name = sc.NAMESPACES[ns_type][1]
            try:
                fd = os.open(f"/proc/{init_pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                if not os.path.exists(f"/proc/{init_pid}"):
                    raise SetupError("the container's init has exited") from None
                continue  # a namespace type this kernel does not have
            theirs = os.fstat(fd)
            ours = os.stat(f"/proc/self/ns/{name}")
            if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
                fds.append((ns_type, fd))
                continue
            # Shared with the host (no namespace of its own): joining it would be a no-op at best, and EPERM
            # after setns(user) gave up our privileges over the host's namespaces.
            os.close(fd)
            if ns_type == "mount":
                root_fd = os.open(f"/proc/{init_pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        # The files are the init's only if it still is the init we recorded (the pid was not reused).
        if not proc.is_alive(init_pid, init_start_time):
            raise SetupError("the container's init has exited")
        joined_user = enter_namespaces(fds, lambda ns_type: f"the container's {ns_type} namespace")
        if root_fd >= 0:
            os.fchdir(root_fd)
            kernel.KERNEL.chroot(".")
        return joined_user
    finally:
        for _, fd in fds:
            os.close(fd)
        if root_fd >= 0:
            os.close(root_fd)


def _the_process(chan: Channel, plan: ExecPlan) -> None:
    """Second child, in the container's pid namespace: finish the process and exec it. Never returns."""
    try:
        adopted = chan.receive(channel.Adopted)  # the joiner is reaped: our parent is now `engine exec`
        kernel.KERNEL.set_parent_death_signal(signal.SIGKILL)
        process = plan.process
        if plan.console_sock is not None:
            from engine import pty  # already imported by the parent (_prepare_console): no file access

            uid = int(process.get("user", {}).get("uid", 0))
            pty.setup_console(plan.console_sock, process.get("consoleSize"), uid=uid, mount=False)
        proc = plan.proc
        assert proc is not None
        keep = {chan.fileno(), proc.fd} | ({plan.notify_sock.fileno()} if plan.notify_sock is not None else set())
        close_fds(keep_below=3 + plan.preserve_fds, keep=keep)
        os.chdir("/")  # setns(mnt) put us at the container's root; cwd is resolved from there
        env, executable = prepare_exec(process)
        lsm.apply(proc, plan.labels)
        proc.close()
        # Built before seccomp and the user switch; the exec goes through it (engine.linux.trampoline).
        tramp = trampoline.Trampoline(executable, chan.fileno(), frame=channel.failure_frame)
        # Cleared before the user switch (which would restore it): the process must outlive `exec --detach`.
        kernel.KERNEL.set_parent_death_signal(0)
        exec_as_the_process(
            {"linux": plan.linux, "process": process},
            plan.state,
            plan.seccomp_plan,
            plan.notify_sock,
            tramp,
            env,
            process_pid=adopted.pid,
            cpu_affinity="final",
        )
    except BaseException as err:
        chan.fail(err)
        os._exit(1)
