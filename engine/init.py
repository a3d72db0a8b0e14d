"""The container side of `engine create`: runs in forked children of the create process and never returns.

    engine create ──fork──> intermediate: join/unshare namespaces ──fork──> init (pid 1 of the new pid ns)
                                  └─ reports the init's pid, exits (so the init re-parents to the subreaper)

The init sets up the filesystem, tells `engine create` it is ready, then blocks opening the exec fifo until
`engine start` opens the other end; it then runs startContainer hooks, drops privileges and execs the user's
program. Errors before the fifo go back over the channel (engine/channel.py draws the messages); after it, into
the fifo for `start` to read. The steps it shares with `engine exec`'s process are in engine/process_setup.py.
"""

from __future__ import annotations

import _signal  # not signal: its enum wrappers import enum (~1.5 ms of create)
import os

from engine import channel, lsm
from engine.channel import Channel
from engine.errors import suppress
from engine.linux import capabilities, kernel, proctitle
from engine.linux import syscalls as sc
from engine.linux.paths import O_PATH
from engine.linux.procfs import ProcFS
from engine.linux.trampoline import Release, Trampoline
from engine.process_setup import (
    WAIT_SIGNALS,
    SetupError,
    become_namespace_root,
    begin_child,
    close_fds,
    connect_seccomp_listener,
    enter_cwd,
    enter_namespaces,
    exec_as_the_process,
    prepare_exec,
)
from engine.rootless import hooks as rootless_hooks
from engine.setup import host_mount_ns
from engine.setup import rootfs as rootfs_setup
from engine.setup.cgroupfs import host_hierarchies
from engine.setup.masking import mask_paths, open_dev_null, readonly_paths
from state import jsonio

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from typing import Any

    from engine.init_plan import InitPlan
    from engine.spec.typed import Linux, Spec, TimeOffsets

# Everything the init uses is imported above: after pivot_root the engine's own files are out of sight.


def intermediate(chan: Channel, init_chan: Channel, plan: InitPlan) -> None:
    """First child: enter the namespaces, fork the init into them, report its pid, exit. `chan` is ours to talk
    to `engine create`; `init_chan` is the init's, only passed on."""
    try:
        _import_what_the_config_needs(plan)
        keep = {chan.fileno(), init_chan.fileno(), plan.fifo_fd, *plan.bind_source_fds.values()}
        begin_child(plan.config["process"], {fd for fd in keep if fd >= 0}, keep_below=3 + plan.preserve_fds)
        flags = plan.namespace_flags
        # timens_offsets is written after unshare, where the host's /proc may no longer be ours to open.
        proc = ProcFS.open() if flags & sc.CLONE_NEWTIME and plan.time_offsets else None
        if not plan.namespace_paths and not flags & sc.CLONE_NEWUSER:
            # Nothing to join first and no user namespace to own the rest: unshare them now, while `engine create`
            # waits on the kernel to put us in the cgroups (~1 ms, the network namespace's mostly). Not the cgroup
            # namespace: its root is the cgroup we are in when we unshare it, which must be the container's.
            early = flags & ~sc.CLONE_NEWCGROUP
            if early:
                kernel.KERNEL.unshare(early)
            flags &= ~early
        chan.receive(channel.InCgroup)
        join_namespaces(plan.namespace_paths)
        if flags & sc.CLONE_NEWUSER:
            # The user namespace first, alone: the engine writes our uid/gid maps from outside, then we become
            # its root, and every namespace unshared after this is owned by it.
            rootless_hooks.before_id_maps()
            kernel.KERNEL.unshare(sc.CLONE_NEWUSER)
            chan.send(channel.UserNsMade())
            chan.receive(channel.IdsMapped)
            rootless_hooks.after_id_maps()
            become_namespace_root()
            flags &= ~sc.CLONE_NEWUSER
        if flags & sc.CLONE_NEWCGROUP and _mounts_cgroups(plan.config):
            plan.cgroup_hierarchies = host_hierarchies()  # the new namespace's root, seen from outside it
        if flags:
            kernel.KERNEL.unshare(flags)
        rootless_hooks.open_bind_sources_in_user_namespace(plan)
        if proc is not None:
            _write_time_offsets(plan.time_offsets, proc)
            proc.close()
        pid = os.fork()
        if pid == 0:
            chan.close()
            container_init(init_chan, plan)
        init_chan.close()
        chan.send(channel.InitForked(pid))
        os._exit(0)
    except BaseException as err:
        chan.fail(err)
        os._exit(1)


def _mounts_cgroups(config: Spec) -> bool:
    return any(m.get("type") == "cgroup" for m in config.get("mounts", []))


def _import_what_the_config_needs(plan: InitPlan) -> None:
    """Set-up code only some configs use, imported here, first thing in the intermediate child (the host's files,
    no namespace entered yet), instead of at the top of this module: each create pays only for what its config
    uses (seccomp ~1 ms; the pty with the console and termios, the hook runner ~0.5 ms each). The init and the
    container's process, forks of this one, find it loaded (nothing may load after pivot_root)."""
    config = plan.config
    if config.get("linux", {}).get("seccomp"):
        import engine.linux.seccomp
    if config["process"].get("terminal"):
        import engine.pty  # noqa: F401
    if plan.hooks.get("createContainer") or plan.hooks.get("startContainer"):  # the ones the init runs (_run_hooks)
        import hooks.runner  # noqa: F401


def _write_time_offsets(offsets: TimeOffsets, proc: ProcFS) -> None:
    """linux.timeOffsets: must be written before any process enters the new time namespace (our child)."""
    lines = []
    for clock in ("monotonic", "boottime"):
        if clock in offsets:
            entry = offsets[clock]
            lines.append(f"{clock} {int(entry.get('secs', 0))} {int(entry.get('nanosecs', 0))}\n")
    # Non-dumpable, our /proc files belong to the host's root, whom a user namespace does not map: be dumpable
    # for this one write (no process of the container exists yet to take advantage).
    kernel.KERNEL.set_dumpable(True)
    try:
        proc.write_self("timens_offsets", "".join(lines).encode())
    except OSError as err:
        raise SetupError(f"linux.timeOffsets: {err.strerror}") from None
    finally:
        kernel.KERNEL.set_dumpable(False)


def join_namespaces(paths: list[tuple[str, str]]) -> None:
    """linux.namespaces entries with a path: every file opened first, then joined (user first, mount last)."""
    fds: list[tuple[str, int]] = []
    try:
        for ns_type, path in paths:
            try:
                fds.append((ns_type, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
            except OSError as err:
                raise SetupError(f"linux.namespaces: {ns_type} path {path}: {err.strerror}") from None
        where = dict(paths)
        enter_namespaces(fds, lambda ns_type: f"linux.namespaces: {ns_type} path {where[ns_type]}")
    finally:
        for _, fd in fds:
            os.close(fd)


def container_init(chan: Channel, plan: InitPlan) -> None:
    """pid 1 of the container: set up, wait for start, exec. Never returns."""
    fifo_fd = -1
    report_at_start: ProcFS | None = None
    try:
        title = ("engine", "init", plan.container_id)
        proctitle.set_title(list(title))  # not create's command line, in ps
        cfg = plan.config
        process = cfg["process"]
        linux = cfg.get("linux", {})
        terminal = bool(process.get("terminal"))
        # A procfs of our own (the container's pid namespace), made before any mount of the container exists:
        # every write into /proc goes through it (engine.linux.procfs).
        proc = ProcFS.open()
        state, propagation, readonly_later = _set_up_filesystem(chan, plan, proc)
        notify_sock = connect_seccomp_listener(cfg)
        seccomp = linux.get("seccomp")
        seccomp_plan = None
        if seccomp:
            from engine.linux import seccomp as libseccomp  # loaded already: _import_what_the_config_needs

            # Compiled (and libseccomp loaded) while the host's files are still visible; a bad profile fails create.
            seccomp_plan = libseccomp.compile_profile(seccomp)
        if host_mount_ns.shares_host_mounts(cfg):
            host_mount_ns.enter_root(plan.rootfs)  # chroot: pivot_root would move the host's own root
        else:
            _mask_and_protect(plan.rootfs, linux)
            rootfs_setup.pivot_into(plan.rootfs, plan.no_pivot, propagation)
        if terminal:  # the container's /dev/pts is our /dev/pts now; before anything is made read-only
            # The master goes back to `engine create`, which holds the connection to --console-socket: a host path
            # that we, maybe a user namespace's root, may not reach.
            from engine import pty  # loaded already: _import_what_the_config_needs

            pty.setup_console(
                lambda master: chan.send_with_fd(channel.ConsoleMaster(), master),
                process.get("consoleSize"),
                uid=process.get("user", {}).get("uid"),
            )
        env, executable = _finish_setup(cfg, proc, readonly_later)

        chan.send(channel.Ready())
        chan.receive(channel.Created)
        chan.close()
        keep = {plan.fifo_fd, proc.fd} | ({notify_sock.fileno()} if notify_sock else set())
        close_fds(keep_below=3 + plan.preserve_fds, keep=keep)
        _exit_on_signals()
        report_at_start = proc  # from here an error goes to `start`, through the fifo (below)
        if _trampoline_can_wait(plan, seccomp_plan, notify_sock):
            _exec_a_trampoline_that_waits(cfg, proc, plan.fifo_fd, executable, env, title)
        # The exec of the program and of each startContainer hook goes through a trampoline
        # (engine.linux.trampoline), built here, before seccomp and the user switch (memfd_create may be neither
        # allowed nor ours then), and before the wait: nothing in it depends on `start`, which would otherwise
        # wait ~0.4 ms longer for our exec. The program's trampoline reports a failed exec on the fifo, whose
        # writable fd takes the number of the O_PATH fd once start opens it.
        trampoline = Trampoline(executable, plan.fifo_fd)
        hook_trampolines = [
            Trampoline(hook["path"], 2, mark_cloexec=False).fd for hook in plan.hooks.get("startContainer", [])
        ]
        capabilities.last_cap()  # asked of the kernel now and kept: the capability steps after the wait need it
        # Blocks until `engine start` opens the read end. dup2 closes the O_PATH fd (runc closes it before exec,
        # for CVE-2016-9962) in the same step.
        opened = proc.reopen(plan.fifo_fd, os.O_WRONLY)
        fifo_fd = os.dup2(opened, plan.fifo_fd, inheritable=False)
        os.close(opened)
        os.write(fifo_fd, b"0")

        state.update(status="created", pid=os.getpid())  # the pid as seen in the container's namespace
        lsm.apply(proc, plan.labels)
        proc.close()
        exec_as_the_process(
            cfg,
            state,
            seccomp_plan,
            notify_sock,
            trampoline,
            env,
            before_exec=lambda: _run_hooks(plan, "startContainer", state, hook_trampolines),
        )
    except BaseException as err:
        if fifo_fd < 0 and report_at_start is not None and report_at_start.fd >= 0:
            with suppress(OSError):  # blocks until `start`, as the wait would have; still killable meanwhile
                _signal.pthread_sigmask(_signal.SIG_UNBLOCK, WAIT_SIGNALS)
                fifo_fd = report_at_start.reopen(plan.fifo_fd, os.O_WRONLY)
                os.write(fifo_fd, b"0")
        if fifo_fd >= 0:
            with suppress(OSError):
                os.write(fifo_fd, str(err).encode()[:4000])
        else:
            chan.fail(err)
        os._exit(127 if fifo_fd >= 0 else 1)


def _trampoline_can_wait(plan: InitPlan, seccomp_plan: object, notify_sock: object) -> bool:
    """Whether the init may become the process before `start` and leave the wait to its exec trampoline
    (engine/linux/trampoline.py: `start` then waits ~1.5 ms less). Not with what must follow the release in the
    init itself: startContainer hooks (run as the process, after start), a seccomp filter (loaded after them; the
    trampoline's calls would have to pass it), an AppArmor or SELinux exec label (the trampoline's open of the
    host's fifo would run under it). Not in a user namespace: a process of the container holding CAP_SYS_PTRACE
    there could reach the waiting trampoline's fds (its procfs, the fifo), where the Python init it replaces
    belongs to the host's namespace."""
    return (
        seccomp_plan is None
        and notify_sock is None
        and not plan.hooks.get("startContainer")
        and plan.labels.apparmor is None
        and plan.labels.selinux is None
        and not plan.namespace_flags & sc.CLONE_NEWUSER
        and not any(ns_type == "user" for ns_type, _ in plan.namespace_paths)
    )


# The trampoline is exec'd with this effective gid (the user's gid otherwise: see _exec_a_trampoline_that_waits).
EXEC_GID = 65534  # nogroup: any gid but the user's would do; the trampoline holds it for a few system calls


def _exec_a_trampoline_that_waits(
    cfg: Spec, proc: ProcFS, fifo_fd: int, executable: str, env: dict[str, str], title: tuple[str, ...]
) -> None:
    """Become the process now (attributes, user, capabilities, no_new_privs: runc's order too), then exec the
    trampoline, which waits for `start` itself. Returns only by raising.

    The trampoline must stay out of reach of the container's processes while it waits (it holds our procfs and the
    fifo's O_PATH fd): its execve is made with an effective gid that is not the real one, which the kernel
    answers by making it non-dumpable, and the trampoline makes the three gids the user's once it is released."""
    release = Release(
        proc_fd=proc.fd,
        fifo_link=f"{proc.self_dir()}/fd/{fifo_fd}".encode(),
        signals=WAIT_SIGNALS,
        path=os.fsencode(executable),
        argv=tuple(os.fsencode(arg) for arg in cfg["process"]["args"]),
        env=tuple(os.fsencode(f"{key}={value}") for key, value in env.items()),
        title=title,
    )
    trampoline = Trampoline(executable, fifo_fd, release=release)
    gid = int(cfg["process"].get("user", {}).get("gid", 0))
    # WAIT_SIGNALS blocked across the execve: one sent meanwhile stays pending for the trampoline's handlers.
    exec_as_the_process(
        cfg,
        {},
        None,
        None,
        trampoline,
        env,
        exec_gid=EXEC_GID if gid != EXEC_GID else EXEC_GID - 1,
        blocked_signals=WAIT_SIGNALS,
    )


def _set_up_filesystem(chan: Channel, plan: InitPlan, proc: ProcFS) -> tuple[dict[str, Any], int, list[int]]:
    """Mounts, then the runtime-namespace hooks (run by `engine create`), then createContainer hooks. Returns the
    state for the hooks, the propagation the rootfs gets once it is the root, and the fds of the mounts still to
    be made read-only (rootfs_setup.make_readonly)."""
    cfg = plan.config
    linux = cfg.get("linux", {})
    propagation = 0
    readonly_later: list[int] = []
    if not host_mount_ns.shares_host_mounts(cfg):  # in the host's mount namespace, nothing is mounted
        propagation = rootfs_setup.set_root_propagation(linux.get("rootfsPropagation"))
        rootfs_setup.bind_rootfs(plan.rootfs)
        own_cgroup_ns = any(ns["type"] == "cgroup" for ns in linux.get("namespaces", []))
        readonly_later = rootfs_setup.setup_mounts(
            plan.rootfs,
            cfg.get("mounts", []),
            plan.bundle,
            own_cgroup_ns,
            linux.get("devices", []),
            plan.bind_source_fds,
            proc,
            plan.cgroup_hierarchies,
        )
    for fd in plan.bind_source_fds.values():
        os.close(fd)
    chan.send(channel.MountsDone())
    state = chan.receive(channel.HooksDone).state
    # config.md: createContainer hooks run in the container namespace, before pivot_root, path resolved in
    # the runtime namespace (our mount namespace still sees the host's paths here).
    _run_hooks(plan, "createContainer", dict(state, pid=os.getpid()))
    return state, propagation, readonly_later


def _mask_and_protect(rootfs: str, linux: Linux) -> None:
    """maskedPaths and readonlyPaths, resolved in the rootfs, before pivot_root (the host's /dev/null, a mask's
    fallback, is only in reach until then)."""
    masked, readonly = linux.get("maskedPaths", []), linux.get("readonlyPaths", [])
    if not masked and not readonly:
        return
    root_fd = os.open(rootfs, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    dev_null = open_dev_null(root_fd) if masked else -1
    try:
        mask_paths(root_fd, masked, dev_null)
        readonly_paths(root_fd, readonly)
    finally:
        os.close(root_fd)
        if dev_null >= 0:
            os.close(dev_null)


def _finish_setup(cfg: Spec, proc: ProcFS, readonly_later: list[int]) -> tuple[dict[str, str], str]:
    """After pivot_root and /dev/console: the remaining config, and the checks that must fail create, not start."""
    linux = cfg.get("linux", {})
    process = cfg["process"]
    readonly_root = bool(cfg.get("root", {}).get("readonly"))
    if readonly_root or readonly_later:
        # runc creates a missing cwd, even in a read-only root: enter it (making it) before anything turns
        # read-only. enter_cwd resolves it inside our root, never through a magic link.
        enter_cwd(process.get("cwd") or "/")
    # runc's finalizeRootfs: the read-only tmpfs and /dev mounts (everything beneath them exists now), then "/".
    rootfs_setup.make_readonly(readonly_later)
    if readonly_root:
        rootfs_setup.make_root_readonly()
    if cfg.get("hostname") is not None:
        _set_name("hostname", cfg["hostname"])
    if cfg.get("domainname") is not None:
        _set_name("domainname", cfg["domainname"])
    for key, value in linux.get("sysctl", {}).items():
        _write_sysctl(proc, key, value)
    return prepare_exec(process)


def _run_hooks(plan: InitPlan, stage: str, state: dict[str, Any], exec_fds: list[int] | None = None) -> None:
    hooks = plan.hooks.get(stage)
    if hooks:
        # runc's working directories: the rootfs for createContainer; process.cwd (ours by then) for startContainer.
        cwd = plan.rootfs if stage == "createContainer" else None
        from hooks.runner import run_hooks  # loaded already: _import_what_the_config_needs

        state_json = jsonio.dumps(state).encode()
        run_hooks(stage, hooks, state_json, warn_only=False, warn=lambda m: None, cwd=cwd, exec_fds=exec_fds)


def _set_name(which: str, value: str) -> None:
    setter = kernel.KERNEL.set_hostname if which == "hostname" else kernel.KERNEL.set_domainname
    try:
        setter(value)
    except OSError as err:
        raise SetupError(
            f"{which}: cannot set {value!r}: {err.strerror} (does the container have its own uts namespace?)"
        ) from None


def _write_sysctl(proc: ProcFS, key: str, value: str) -> None:
    """Through our own procfs: a config mount over /proc/sys (refused anyway) or an image's fake /proc cannot
    make the write land in a plain file. create checked the key (only namespaced ones, no / or ..)."""
    try:
        proc.write("sys/" + key.replace(".", "/"), value.encode())
    except OSError as err:
        raise SetupError(f"linux.sysctl.{key}: cannot write {value!r}: {err.strerror}") from None


def _exit_on_signals() -> None:
    # As pid 1 of a pid namespace, a signal with the default action is dropped while we wait for `start`, so
    # install handlers that exit the way the default action would have.
    for sig in WAIT_SIGNALS:
        _signal.signal(sig, lambda number, frame: os._exit(128 + number))
