"""`engine create`: validate the bundle, claim the id, fork the container's init and wait until it is set up.

Follow a container from here: load config -> claim id -> plan the cgroups -> fork the intermediate child (it loads
the set-up code meanwhile) -> make the cgroups, state "creating", put the child in them -> it enters the namespaces
and forks the init -> init mounts the rootfs -> prestart/createRuntime hooks run here
-> init pivots and finishes -> state "created" -> the init blocks on the exec fifo until `engine start`.
Every step registers its undo; a failure unwinds them in reverse and leaves no trace.
"""

from __future__ import annotations

import _signal  # not signal: its enum wrappers import enum (~1.5 ms of create)
import os

from engine import channel, hookpoints, lsm
from engine.errors import ConfigError, EngineError, suppress
from engine.init_plan import InitPlan
from engine.linux.namespaces import CLONE_NEWTIME, CLONE_NEWUSER, NAMESPACES
from engine.log import Log
from engine.pidfile import write_pid_file
from engine.record import field, record
from engine.rootless import checks as rootless_checks
from engine.rootless import hooks as rootless_hooks
from state import jsonio, process
from state.lifecycle import Lifecycle
from state.record import ContainerRecord
from state.store import CONFIG_FILE, EXEC_FIFO, Store, write_atomically

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    import _socket

    from engine.cgroups import Manager
    from engine.cgroups.layout import Layout
    from engine.cgroups.manager import Plan
    from engine.spec.typed import Linux, Process, Spec
    from engine.undo import UndoStack


@record
class CreateOptions:
    container_id: str
    bundle: str
    pid_file: str | None = None
    console_socket: str | None = None
    no_pivot: bool = False
    preserve_fds: int = 0
    sync_socket: str | None = None
    hooks_dirs: list[str] = field(default_factory=list)
    reaper: bool = False  # the caller (`engine run`) waits for the init and records its exit status
    systemd_cgroup: bool = False  # --systemd-cgroup: the cgroup is a systemd scope (engine/cgroups/systemd.py)
    # config.json's bytes as the caller read them (`engine run`, for process.terminal): validated here as they are,
    # so that both see one document; None: create reads the bundle's.
    config_data: bytes | None = None


def load_bundle(bundle: str, config_data: bytes | None = None) -> tuple[Spec, str]:
    """Validate config.json (the spec models, compiled: no pydantic) and return it in JSON shape, with the
    absolute rootfs path. config_data: the file's bytes as the caller read them (None: read them here)."""
    from engine.spec.document import load_config, parse_config

    path = os.path.join(bundle, "config.json")
    config = load_config(path) if config_data is None else parse_config(config_data)
    if not config.get("root") or not config["root"].get("path"):
        raise ConfigError("config.json: root.path: required to create a container")
    if not config.get("process"):
        raise ConfigError("config.json: process: required to create a container")
    if not config["process"].get("args"):
        raise ConfigError("config.json: process.args: must not be empty")
    user = config["process"].get("user", {})
    for key in ("uid", "gid"):
        if user.get(key) == 0xFFFFFFFF:
            raise ConfigError(f"config.json: process.user.{key}: 4294967295 is (uid_t)-1, not a valid id")
    rootfs = os.path.join(bundle, config["root"]["path"])
    if not os.path.isdir(rootfs):
        raise ConfigError(f"config.json: root.path: {rootfs} is not a directory")
    return config, os.path.realpath(rootfs)


def namespace_plan(config: Spec) -> tuple[int, list[tuple[str, str]]]:
    # Duplicate types never get here: the spec models reject them (engine/spec/models.py).
    flags, seen = 0, set()
    paths: list[tuple[str, str]] = []
    for ns in config.get("linux", {}).get("namespaces", []):
        ns_type = ns["type"]
        seen.add(ns_type)
        if ns.get("path"):
            paths.append((ns_type, ns["path"]))
        else:
            flags |= NAMESPACES[ns_type][0]
    if "mount" not in seen:
        # config-linux.md: an unlisted namespace is the runtime's. The host's mount namespace then: chroot, no mounts.
        from engine.setup.host_mount_ns import refuse_what_needs_mounts

        refuse_what_needs_mounts(config)
    linux = config.get("linux", {})
    if flags & CLONE_NEWUSER and not (linux.get("uidMappings") and linux.get("gidMappings")):
        raise ConfigError("config.json: linux.uidMappings/gidMappings: required with a new user namespace")
    if linux.get("timeOffsets") and not flags & CLONE_NEWTIME:
        raise ConfigError("config.json: linux.timeOffsets: needs a new time namespace in linux.namespaces")
    return flags, paths


def create(store: Store, options: CreateOptions, log: Log) -> ContainerRecord:
    from engine.cgroups import attach_warmup
    from engine.undo import UndoStack

    # The child's first cgroup.procs write would wait ~10 ms for an RCU grace period: have it start now, in a thread,
    # while we validate and fork (engine/cgroups/attach_warmup.py).
    host_files = attach_warmup.start()
    bundle = os.path.realpath(options.bundle)
    config, rootfs = load_bundle(bundle, options.config_data)
    _drop_unknown_capabilities(config["process"], log)
    _check_unsupported(config, log)
    labels = lsm.check(config["process"], log.warning)
    check_sysctls(config)
    terminal = bool(config["process"].get("terminal"))
    if terminal or options.console_socket:  # else nothing to check: the console module (termios, struct) stays out
        from engine import console

        # create always detaches; `engine run` in the foreground passes its own socket (console.ConsoleSocket).
        console.check_terminal(terminal, options.console_socket, detach=True)
    ns_flags, ns_paths = namespace_plan(config)
    rootless_checks.check_config(config)
    hooks = hookpoints.collect(config, options.hooks_dirs)
    log.debug(f"create {options.container_id}: validated {bundle}/config.json (rootfs {rootfs})")
    if not options.reaper:  # `engine run` in the foreground waits for its init: the monitor leaves it alone
        # Imported before the fork (_launch), as what the cgroups need: not into pages shared with the child.
        from state.monitor import ensure_running
    undo = UndoStack(warn=log.warning)
    with store.reserve(options.container_id):
        undo.push("remove state directory", lambda: store.remove(options.container_id))
        log.debug(f"create {options.container_id}: claimed the id ({store.path(options.container_id)})")
        me = os.getpid()
        record = ContainerRecord(
            id=options.container_id,
            bundle=bundle,
            rootfs=rootfs,
            annotations=dict(config.get("annotations", {})),
            creator_pid=me,
            creator_start_time=process.start_time(me),
            sync_socket=os.path.abspath(options.sync_socket) if options.sync_socket else None,
        )
        if options.reaper:
            record.reaper_pid, record.reaper_start_time = me, record.creator_start_time
        life = Lifecycle.new(record, store, warn=log.warning)
        try:
            console_sock = None
            if options.console_socket:  # check_terminal: given exactly when process.terminal is
                from engine import console

                # As runc: connected here, on the host, as the caller; the init may not reach the path (a user
                # namespace's root, a 0700 directory). The init passes the pty master back; _launch forwards it.
                console_sock = console.connect_console_socket(options.console_socket)
                undo.push("close the console socket", console_sock.close)
            # The config exactly as validated: `exec` reads this, never the bundle again (which may have changed).
            save_config(store.path(record.id), config)
            hookpoints.save(store.path(record.id), hooks)
            fifo = store.path(record.id, EXEC_FIFO)
            os.mkfifo(fifo, 0o600)
            # runc's mode: the init may have become the container's user before it opens it (through its fd: the
            # state directory is root's alone).
            os.chmod(fifo, 0o622)
            root_uid, root_gid = _host_ids_of_root(config)
            # The init, as the container's root, opens it for writing.
            rootless_hooks.give_fifo_to_container_root(fifo, root_uid, root_gid)
            fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
            undo.push("close the fifo fd", lambda: os.close(fifo_fd))
            try:
                # Only a user namespace's root may fail to reach a source; others bind by path, as before.
                userns = ns_flags & CLONE_NEWUSER
                source_fds = {}
                if rootless_hooks.bind_sources_opened_by_create(bool(userns)):
                    from engine.setup.rootfs import open_bind_sources  # the mount code: only for a user namespace

                    source_fds = open_bind_sources(config.get("mounts", []), bundle)
            except EngineError as err:
                raise ConfigError(f"config.json: {err}") from None
            undo.push("close the bind source fds", lambda: list(map(os.close, source_fds.values())))
            plan = InitPlan(
                container_id=record.id,
                bundle=bundle,
                rootfs=rootfs,
                config=config,
                fifo_path=fifo,
                no_pivot=options.no_pivot,
                preserve_fds=options.preserve_fds + _socket_activation(config),
                namespace_flags=ns_flags,
                namespace_paths=ns_paths,
                hooks=hooks,
                time_offsets=config.get("linux", {}).get("timeOffsets", {}),
                fifo_fd=fifo_fd,
                bind_source_fds=source_fds,
                labels=labels,
            )
            _launch(plan, record, life, undo, options, log, console_sock, host_files)
        except BaseException as err:
            if life.state != "new":
                with suppress(Exception):  # the unwind below matters more
                    life.fire("stop")  # supervisors on the sync socket learn that creating failed
            undo.unwind()
            if record.pid:
                # runtime.md: a failing create hook stops the container and goes on at step 12: destroy it
                # (the undo list, just unwound), then step 13, the poststop hooks.
                _poststop(hooks, record, log)
            if isinstance(err, channel.ChannelError):
                raise EngineError(f"create {options.container_id!r}: {err}") from None
            raise
        undo.discard()
    if not options.reaper:
        ensure_running(store.root, record.id)  # someone must notice when this init exits
    return record


def _launch(
    plan: InitPlan,
    record: ContainerRecord,
    life: Lifecycle,
    undo: UndoStack,
    options: CreateOptions,
    log: Log,
    console_sock: _socket.socket | None = None,
    host_files: tuple[str, str] | None = None,
) -> None:
    from engine.cgroups import CgroupError

    # Before the fork: what needs no cgroup touched (the checks of linux.resources, the controllers' code, the
    # device rules). Done after it, the imports and allocations would write to pages the child shares with us, and
    # the kernel would copy each first (~3 us a page here).
    planned = _plan_cgroups(plan.config, record.id, options, log, host_files)
    if plan.namespace_flags & CLONE_NEWUSER:
        from engine.rootless.idmap import write_id_maps  # only with a user namespace of the container's own
    to_intermediate, intermediate_end = channel.pair("engine create", "the intermediate child")
    to_init, init_end = channel.pair("engine create", "the container's init")
    # Forked before the cgroups are made: the child loads the container's set-up code (_intermediate) while we make
    # them, write the first state.json and put the child in (whose first cgroup.procs write sleeps in the kernel).
    pid = os.fork()
    if pid == 0:
        to_intermediate.close()
        to_init.close()
        _intermediate(intermediate_end, init_end, plan)  # never returns
    intermediate_end.close()
    init_end.close()
    with to_intermediate, to_init:  # the protocol: engine/channel.py
        try:
            cgroups = _create_cgroups(planned, plan.config, record, undo, options, log, host_files)
        except BaseException:
            to_intermediate.close()  # the child, waiting for InCgroup, sees the channel end and exits
            process.reap(pid)
            raise
        # After the cgroups' undo, so unwound before it: the child is gone before they are removed.
        undo.push("reap the intermediate child", lambda: process.reap(pid))
        if cgroups is not None:
            log.debug(f"create {record.id}: made the cgroups (cgroupsPath {cgroups.cgroups_path})")
        # The first state.json already names the cgroups: if this process is killed from here on,
        # `delete --force` still finds everything it made.
        life.fire("begin_create")
        try:
            if cgroups is not None:  # before any cgroup namespace: its root is to be the container's cgroup
                cgroups.add(pid)
                record.cgroups = cgroups.to_json()  # the systemd driver makes its cgroups only now (with a pid)
        except CgroupError as err:
            raise EngineError(str(err)) from None
        to_intermediate.send(channel.InCgroup())
        if plan.namespace_flags & CLONE_NEWUSER:
            to_intermediate.receive(channel.UserNsMade)
            write_id_maps(pid, plan.config["linux"])
            to_intermediate.send(channel.IdsMapped())
        init_pid = to_intermediate.receive(channel.InitForked).pid
        log.debug(f"create {record.id}: forked the init, pid {init_pid} (through pid {pid})")
        process.reap(pid)
        record.pid = init_pid
        record.pid_start_time = process.start_time(init_pid)
        if record.pid_start_time is None:  # gone already: without its start time no later command could tell
            raise EngineError(f"create {record.id!r}: the container's init exited during setup")
        undo.push("kill the container init", lambda: _kill(init_pid, record.pid_start_time))
        to_init.receive(channel.MountsDone)
        state = record.public_state("creating")
        for stage in ("prestart", "createRuntime"):  # runtime namespace, after the mounts, before pivot_root
            hookpoints.run(stage, plan.hooks, state, log, cwd=plan.bundle)
        log.debug(f"create {record.id}: the init set up its filesystem; prestart and createRuntime hooks ran")
        to_init.send(channel.HooksDone(state))
        if console_sock is not None:  # process.terminal: the init allocated the pty after pivot_root
            from engine import console  # loaded already, to connect console_sock

            _, master = to_init.receive_with_fd(channel.ConsoleMaster)
            try:
                console.forward_master(console_sock, master)
            finally:
                os.close(master)
                console_sock.close()
            log.debug(f"create {record.id}: sent the pty master to the console socket")
        to_init.receive(channel.Ready)
        pid_file = options.pid_file
        if pid_file:
            write_pid_file(pid_file, init_pid)
            undo.push("remove pid file", lambda: os.unlink(pid_file))
        # state.json must say "created" before the init may go on waiting for `engine start`.
        life.fire("finish_create")
        to_init.send(channel.Created())
        log.debug(f"create {record.id}: created; the init (pid {init_pid}) waits for start")


def _intermediate(chan: channel.Channel, init_chan: channel.Channel, plan: InitPlan) -> None:
    """The forked child: load the container's set-up code, then become the intermediate (engine/init.py).

    Imported here, not by `engine create`'s own process, which never runs it: the child loads it (ctypes, the
    mounts, capabilities, seccomp... ~10 ms) while the parent puts it into the cgroups, whose first cgroup.procs
    write sleeps as long in the kernel (an RCU grace period). Before any namespace or mount: the files are the
    host's, as the parent would have read them; the init imports nothing later (tests/integration/
    test_late_imports.py)."""
    import gc

    # As begin_child does next: no object from before the fork may be collected here (it could close an fd number
    # reused since); the imports below allocate enough to trigger a collection.
    gc.freeze()
    try:
        from engine.init import intermediate
    except BaseException as err:
        chan.fail(err)
        os._exit(1)
    intermediate(chan, init_chan, plan)


def _plan_cgroups(
    config: Spec, container_id: str, options: CreateOptions, log: Log, host_files: tuple[str, str] | None
) -> tuple[Manager, Plan] | None:
    """The cgroupfs manager and its plan (Manager.plan), before create forks; None when the container gets no
    cgroups of its own (rootless, nothing delegated) or the systemd driver makes them (_create_systemd_cgroups).
    host_files: /proc/self/cgroup and /proc/self/mountinfo as the warm-up read them (attach_warmup.start), so
    that create reads and parses each once."""
    from engine.cgroups import CgroupError, layout, manager_for
    from engine.rootless import cgroups as rootless_cgroups
    from engine.rootless import rootless

    if options.systemd_cgroup:
        return None
    linux = config.get("linux", {})
    without_root = rootless()  # asked once: each asking reads /proc/self/uid_map
    if not rootless_cgroups.use_cgroups(linux, container_id, rootless_engine=without_root):
        log.debug(f"create {container_id}: rootless without a delegated cgroup: the container stays in ours")
        return None
    resources = rootless_cgroups.without_devices(linux.get("resources"), rootless_engine=without_root)
    devices = linux.get("devices") if resources is linux.get("resources") else None
    host = layout.detect_from(*host_files) if host_files is not None else None
    cgroups = manager_for(linux.get("cgroupsPath"), container_id, warn=log.warning, layout=host)
    try:
        rules = rootless_cgroups.device_rules(rootless_engine=without_root)
        return cgroups, cgroups.plan(resources, linux_devices=devices, device_rules=rules)
    except CgroupError as err:
        raise EngineError(f"config.json: {err}") from None


def _create_cgroups(
    planned: tuple[Manager, Plan] | None,
    config: Spec,
    record: ContainerRecord,
    undo: UndoStack,
    options: CreateOptions,
    log: Log,
    host_files: tuple[str, str] | None = None,
) -> Manager | None:
    """Make the cgroups _plan_cgroups planned (or the systemd driver's)."""
    from engine.cgroups import CgroupError

    if options.systemd_cgroup:
        host = None
        if host_files is not None:
            from engine.cgroups import layout

            host = layout.detect_from(*host_files)
        return _create_systemd_cgroups(config.get("linux", {}), record, undo, log, host)
    if planned is None:
        return None
    cgroups, cgroup_plan = planned
    try:
        cgroups.create(plan=cgroup_plan)
    except CgroupError as err:
        raise EngineError(f"config.json: {err}") from None
    undo.push("remove the cgroups", cgroups.destroy)
    record.cgroups = cgroups.to_json()
    return cgroups


def _create_systemd_cgroups(
    linux: Linux, record: ContainerRecord, undo: UndoStack, log: Log, host: Layout | None = None
) -> Manager:
    """--systemd-cgroup: a scope that systemd makes at the first add(pid) (engine/cgroups/systemd.py)."""
    from engine.cgroups import CgroupError, manager_for
    from engine.rootless import rootless

    if rootless():
        raise EngineError("--systemd-cgroup: not supported for a rootless engine (systemd's user instance is not used)")
    try:
        cgroups = manager_for(linux.get("cgroupsPath"), record.id, warn=log.warning, layout=host, systemd=True)
        cgroups.create(linux.get("resources"), linux_devices=linux.get("devices"))
    except CgroupError as err:
        raise EngineError(f"config.json: {err}") from None
    undo.push("remove the cgroups", cgroups.destroy)
    record.cgroups = cgroups.to_json()
    return cgroups


def save_config(directory: str, config: Spec) -> None:
    """Write the validated config (the dict create works from) into the state directory, atomically."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        write_atomically(dir_fd, CONFIG_FILE, jsonio.dumps(config).encode())
    finally:
        os.close(dir_fd)


# Sysctls that belong to a namespace (runc's validator): ipc ones need the container's own ipc namespace, net.*
# its own network namespace; kernel.domainname/hostname a UTS namespace. Every other key is global: writing it
# would change the host.
IPC_SYSCTLS = {
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
}


def check_sysctls(config: Spec) -> None:
    """linux.sysctl: only keys the container's own namespaces scope, written as dotted names."""
    linux = config.get("linux", {})
    sysctls = linux.get("sysctl", {})
    if not sysctls:
        return
    namespaces: dict[str, str | None] = {ns["type"]: ns.get("path") for ns in linux.get("namespaces", [])}
    for key in sysctls:
        where = f"config.json: linux.sysctl.{key}"
        parts = key.split(".")
        if "/" in key or "\0" in key or any(part in ("", "..") for part in parts):
            raise ConfigError(f"{where}: not a sysctl name (dot-separated, without '/' or empty parts)")
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            _own_namespace(namespaces, "ipc", where)
        elif key.startswith("net."):
            _own_namespace(namespaces, "network", where)
        elif key in ("kernel.domainname", "kernel.hostname"):
            _own_namespace(namespaces, "uts", where)
            if key == "kernel.hostname" and config.get("hostname") is not None:
                raise ConfigError(f"{where}: conflicts with the hostname field; set one of them")
        else:
            raise ConfigError(f"{where}: not namespaced: writing it would change the host")


def _own_namespace(namespaces: dict[str, str | None], kind: str, where: str) -> None:
    if kind not in namespaces:
        raise ConfigError(f"{where}: needs the container's own {kind} namespace (linux.namespaces has none)")
    path = namespaces[kind]
    if path:
        proc_name = NAMESPACES[kind][1]
        try:
            theirs, ours = os.stat(path), os.stat(f"/proc/self/ns/{proc_name}")
        except OSError as err:
            raise ConfigError(f"{where}: linux.namespaces {kind} path {path}: {err.strerror}") from None
        if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
            raise ConfigError(f"{where}: the {kind} namespace at {path} is the host's")


def _check_unsupported(config: Spec, log: Log) -> None:
    """runtime.md Create: "If the runtime cannot apply a property as specified in the configuration, it MUST
    generate an error". What engine does not do yet is refused here, before anything is made."""
    linux = config.get("linux", {})
    for key in ("netDevices", "intelRdt", "memoryPolicy"):
        if linux.get(key):
            raise ConfigError(f"config.json: linux.{key}: not supported by engine yet")
    for i, mount in enumerate(config.get("mounts", [])):
        if "tmpcopyup" in mount.get("options", []):
            raise ConfigError(f"config.json: mounts[{i}].options: tmpcopyup is not supported by engine yet")
    if linux.get("mountLabel") and not lsm.selinux_enabled():
        log.warning(
            f"linux.mountLabel: SELinux is not enabled on this host; the label {linux['mountLabel']!r} is not applied"
        )


def _drop_unknown_capabilities(process: Process, log: Log) -> None:
    """config.md: a capability that "cannot be mapped to a relevant kernel interface ... MUST be logged as a
    warning": warn here, where the caller sees it (create's stderr and --log), and drop it from the config."""
    from engine.linux.capability_names import CAP_SETS, CAPABILITIES

    caps = process.get("capabilities", {})
    for key in CAP_SETS:  # the models' order, which is the validated document's
        names = caps.get(key, [])
        unknown = [name for name in names if name not in CAPABILITIES]
        if unknown:
            log.warning(f"process.capabilities.{key}: ignoring unknown capabilities {', '.join(unknown)}")
            caps[key] = [name for name in names if name in CAPABILITIES]


def _socket_activation(config: Spec) -> int:
    """systemd socket activation, as runc: with LISTEN_FDS=n in our environment, fds 3..3+n-1 go to the
    container too (before the --preserve-fds ones) and its process gets LISTEN_FDS=n and LISTEN_PID=1.
    Only when LISTEN_PID names us (sd_listen_fds' rule): a LISTEN_FDS inherited from somewhere else says
    nothing about our fds 3 and up, which may be anything of ours."""
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
        if int(os.environ.get("LISTEN_PID", "0")) != os.getpid():
            return 0
    except ValueError:
        return 0
    if count <= 0:
        return 0
    env = config["process"].setdefault("env", [])
    env[:] = [e for e in env if not e.startswith(("LISTEN_FDS=", "LISTEN_PID="))]
    env += [f"LISTEN_FDS={count}", "LISTEN_PID=1"]
    return count


def _host_ids_of_root(config: Spec) -> tuple[int, int]:
    """The host uid/gid that the container's root maps to (0, 0 without a user namespace)."""
    linux = config.get("linux", {})
    if not any(ns["type"] == "user" and not ns.get("path") for ns in linux.get("namespaces", [])):
        return 0, 0
    ids = []
    for mappings in (linux.get("uidMappings", []), linux.get("gidMappings", [])):
        host = 0
        for m in mappings:
            if m["containerID"] <= 0 < m["containerID"] + m["size"]:
                host = m["hostID"] - m["containerID"]
        ids.append(host)
    return ids[0], ids[1]


def _poststop(hooks: hookpoints.Hooks, record: ContainerRecord, log: Log) -> None:
    hookpoints.run("poststop", hooks, record.public_state("stopped"), log, warn_only=True, cwd=record.bundle)


def _kill(pid: int, start_time: int | None) -> None:
    if process.is_alive(pid, start_time):
        os.kill(pid, _signal.SIGKILL)
