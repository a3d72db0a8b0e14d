"""`engine exec`, for real: a process joins a created or running container (runc exec), as root.

Every test drives the engine's CLI against real containers from the busybox rootfs (conftest's `engine`
fixture: a private --root, and a check that nothing is left behind).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine import console
from engine.linux import seccomp
from engine.linux.capabilities import names_to_mask
from engine.spec.default import default_mounts
from tests import host
from tests.integration.conftest import ENGINE, Engine

NAMESPACES = ("user", "ipc", "uts", "net", "pid", "mnt", "cgroup", "time")
DEFAULT_CAPS = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")  # `engine spec`'s, as runc's


# --- helpers ---------------------------------------------------------------------------------------------


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    return None


def write_config(bundle: Path, change: Any) -> Path:
    path = bundle / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))
    return bundle


def started(engine: Engine, bundle: Path | None = None) -> tuple[str, int]:
    """A running container (`sleep 600` unless the bundle says otherwise): (id, init's host pid)."""
    container_id = engine.new_id()
    engine("create", "--bundle", str(bundle or engine.bundle(["sleep", "600"])), container_id, check=True)
    engine("start", container_id, check=True)
    return container_id, engine.state(container_id)["pid"]


def processes_in_pid_ns_of(init_pid: int) -> list[tuple[int, list[str], list[int]]]:
    """(host pid, argv, NSpid) of every process in the init's pid namespace, the init excluded."""
    ns = os.readlink(f"/proc/{init_pid}/ns/pid")
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == init_pid:
            continue
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{name}/ns/pid") != ns:
                continue
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")[:-1]
            status = Path(f"/proc/{name}/status").read_text()
            nspid = next(line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:"))
            found.append((int(name), [a.decode() for a in argv], [int(p) for p in nspid]))
    return found


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 255, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


# --- joining ---------------------------------------------------------------------------------------------


def test_exec_joins_every_namespace_of_the_init(engine: Engine) -> None:
    container_id, init_pid = started(engine)
    script = "hostname; for n in " + " ".join(NAMESPACES) + "; do echo $n $(readlink /proc/self/ns/$n); done; ps"
    out = engine("exec", container_id, "sh", "-c", script, check=True).stdout.splitlines()
    assert out[0] == "engine"  # the container's uts namespace, where the init set its hostname
    seen = dict(line.split() for line in out[1 : 1 + len(NAMESPACES)])
    for ns in NAMESPACES:
        if os.path.exists(f"/proc/{init_pid}/ns/{ns}"):
            assert seen[ns] == os.readlink(f"/proc/{init_pid}/ns/{ns}"), ns
    assert seen["pid"] != os.readlink("/proc/self/ns/pid")
    ps = out[1 + len(NAMESPACES) :]
    pid1 = [line.split(None, 2) for line in ps if line.split()[0] == "1"]
    assert pid1 and pid1[0][2] == "sleep 600", ps  # the init is pid 1 of the namespace we are in


def test_exec_in_a_created_container(engine: Engine) -> None:
    container_id = engine.new_id()
    engine("create", "--bundle", str(engine.bundle(["sleep", "600"])), container_id, check=True)
    assert engine("exec", container_id, "echo", "hello", check=True).stdout == "hello\n"
    assert engine.state(container_id)["status"] == "created"  # exec changes nothing: start still works
    engine("start", container_id, check=True)
    assert engine.state(container_id)["status"] == "running"


def test_exec_in_a_user_namespace(engine: Engine) -> None:
    def userns(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        # cgroupfs cannot be mounted from an unprivileged user namespace without a cgroup namespace root
        config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"]

    container_id, init_pid = started(engine, write_config(engine.bundle(["sleep", "600"]), userns))
    out = engine("exec", "-u", "1000", container_id, "sh", "-c", "id -u; readlink /proc/self/ns/user", check=True)
    uid, ns = out.stdout.split()
    assert uid == "1000" and ns == os.readlink(f"/proc/{init_pid}/ns/user")
    status = next(line for line in Path(f"/proc/{init_pid}/status").read_text().splitlines() if line[:4] == "Uid:")
    assert status.split()[1] == "100000"  # sanity: the init really runs mapped


# --- exit status and signals -------------------------------------------------------------------------------


def test_exit_status_is_the_process_s(engine: Engine) -> None:
    container_id, _ = started(engine)
    assert engine("exec", container_id, "sh", "-c", "exit 5").returncode == 5
    assert engine("exec", container_id, "false").returncode == 1
    assert engine("exec", container_id, "sh", "-c", "kill -9 $$").returncode == 128 + signal.SIGKILL


def test_signals_are_forwarded(engine: Engine) -> None:
    container_id, init_pid = started(engine)
    with tempfile.TemporaryFile() as err:
        exec_ = subprocess.Popen(
            [ENGINE, "--root", str(engine.root), "exec", container_id, "sleep", "60"], stdout=err, stderr=err
        )
        try:
            found = wait_for(lambda: [p for p in processes_in_pid_ns_of(init_pid) if p[1] == ["sleep", "60"]])
            assert found, "the exec'd sleep never showed up in the container"
            exec_.send_signal(signal.SIGTERM)
            assert exec_.wait(10) == 128 + signal.SIGTERM
        finally:
            exec_.kill()
            exec_.wait()


# --- the process: flags, config, --process ----------------------------------------------------------------


def test_env_cwd_user_and_groups(engine: Engine) -> None:
    container_id, _ = started(engine)
    script = 'id -u; id -g; id -G; pwd; echo "$FOO"; echo "$TERM"; echo "$HOME"; ulimit -n'
    out = engine(
        "exec",
        *("-e", "FOO=bar baz", "--env", "TERM=dumb", "--cwd", "/etc", "-u", "1000:1001", "-g", "5", "-g", "7"),
        container_id,
        "sh",
        "-c",
        script,
        check=True,
    ).stdout.splitlines()
    # TERM overrides config.json's xterm; HOME: uid 1000 has no passwd entry; RLIMIT_NOFILE from config.json
    assert out == ["1000", "1001", "1001 5 7", "/etc", "bar baz", "dumb", "/", "1024"]
    root = engine("exec", container_id, "sh", "-c", 'id -u; id -G; pwd; echo "$TERM $HOME"', check=True)
    assert root.stdout.splitlines() == ["0", "0", "/", "xterm /root"]  # config.json's process, unchanged


def cap_masks(out: str) -> dict[str, int]:
    return {k: int(v, 16) for k, v in (line.split(":") for line in out.splitlines() if line.startswith("Cap"))}


def test_capabilities_from_config_and_cap(engine: Engine) -> None:
    container_id, _ = started(engine)
    default = cap_masks(engine("exec", container_id, "cat", "/proc/self/status", check=True).stdout)
    assert default["CapEff"] == default["CapBnd"] == names_to_mask(DEFAULT_CAPS)
    added = engine("exec", "--cap", "CAP_SYS_ADMIN", "-c", "net_raw", container_id, "cat", "/proc/self/status")
    masks = cap_masks(added.stdout)
    want = names_to_mask([*DEFAULT_CAPS, "CAP_SYS_ADMIN", "CAP_NET_RAW"])
    assert masks["CapEff"] == masks["CapPrm"] == masks["CapBnd"] == want, added.stderr
    assert "CAP_NOPE" in one_line_error(engine("exec", "--cap", "CAP_NOPE", container_id, "true"))


def test_no_new_privs(engine: Engine) -> None:
    bundle = write_config(engine.bundle(["sleep", "600"]), lambda c: c["process"].update(noNewPrivileges=False))
    container_id, _ = started(engine, bundle)
    script = "grep NoNewPrivs /proc/self/status"
    assert engine("exec", container_id, "sh", "-c", script, check=True).stdout.split() == ["NoNewPrivs:", "0"]
    out = engine("exec", "--no-new-privs", container_id, "sh", "-c", script, check=True).stdout
    assert out.split() == ["NoNewPrivs:", "1"]


def test_seccomp_of_the_container_applies(engine: Engine) -> None:
    seccomp = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }
    bundle = write_config(engine.bundle(["sleep", "600"]), lambda c: c["linux"].update(seccomp=seccomp))
    container_id, _ = started(engine, bundle)
    out = engine("exec", container_id, "sh", "-c", "grep Seccomp: /proc/self/status; mkdir /dev/shm/x 2>&1")
    assert out.stdout.splitlines()[0].split() == ["Seccomp:", "2"]
    assert "Operation not permitted" in out.stdout


def test_process_json(engine: Engine, tmp_path: Path) -> None:
    container_id, _ = started(engine)
    process = {
        "args": ["sh", "-c", 'id -u; pwd; echo "$X"; grep NoNewPrivs /proc/self/status'],
        "cwd": "/etc",
        "env": ["PATH=/bin", "X=from process.json"],
        "user": {"uid": 7, "gid": 8},
    }
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    out = engine("exec", "--process", str(path), container_id, check=True).stdout.splitlines()
    assert out[:3] == ["7", "/etc", "from process.json"]
    # The file says it all, except the confinement it leaves out: noNewPrivileges (true in config.json) is
    # inherited from the container, as apparmorProfile, selinuxLabel and rlimits are (issue #7, point 7).
    assert out[3].split() == ["NoNewPrivs:", "1"]
    path.write_text(json.dumps({"args": ["true"], "cwd": 3}))
    error = one_line_error(engine("exec", "-p", str(path), container_id))
    assert f"{path}: cwd: expected a string" in error
    error = one_line_error(engine("exec", "-p", str(path), container_id, "true"))
    assert "not both" in error


# --- errors ------------------------------------------------------------------------------------------------


def test_unknown_stopped_and_no_command(engine: Engine) -> None:
    assert "container 'nope' does not exist" in one_line_error(engine("exec", "nope", "true"))
    container_id = engine.new_id()
    engine("run", "--detach", "--bundle", str(engine.bundle(["true"])), container_id, check=True)
    assert wait_for(lambda: engine.state(container_id)["status"] == "stopped")
    error = one_line_error(engine("exec", container_id, "true"))
    assert f"cannot exec in container '{container_id}': it is stopped" in error
    running, _ = started(engine)
    assert "no command" in one_line_error(engine("exec", running))


def test_a_failing_exec_is_one_line_and_leaves_nothing(engine: Engine) -> None:
    container_id, init_pid = started(engine)
    error = one_line_error(engine("exec", container_id, "no-such-program"))
    assert "'no-such-program'" in error and "not found" in error
    error = one_line_error(engine("exec", "--cwd", "/etc/passwd", container_id, "true"))
    assert "/etc/passwd" in error
    assert processes_in_pid_ns_of(init_pid) == []


@pytest.mark.skipif(host.apparmor_enabled(), reason=f"{host.APPARMOR_ON}: exec --apparmor can apply a profile")
def test_apparmor_when_disabled(engine: Engine) -> None:
    container_id, _ = started(engine)
    error = one_line_error(engine("exec", "--apparmor", "some-profile", container_id, "true"))
    assert "AppArmor is not enabled" in error


@pytest.mark.skipif(host.selinux_enabled(), reason=f"{host.SELINUX_ON}: a process label is applied")
def test_selinux_label_when_disabled(engine: Engine) -> None:
    container_id, _ = started(engine)
    result = engine("exec", "--process-label", "system_u:system_r:container_t:s0", container_id, "echo", "ran")
    assert result.returncode == 0 and result.stdout == "ran\n"
    assert "SELinux is not enabled" in result.stderr and result.stderr.count("\n") == 1


# --- detach, pid file, fds ---------------------------------------------------------------------------------


def test_detach_and_pid_file(engine: Engine, tmp_path: Path) -> None:
    container_id, init_pid = started(engine)
    pid_file = tmp_path / "exec.pid"
    started_at = time.monotonic()
    result = engine("exec", "--detach", "--pid-file", str(pid_file), container_id, "sleep", "60", check=True)
    assert time.monotonic() - started_at < 10 and result.stdout == "" and result.stderr == ""
    pid = int(pid_file.read_text())
    try:
        assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x0060\x00"  # exec'd, alive, ours
        assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{init_pid}/ns/pid")
        assert [p[0] for p in processes_in_pid_ns_of(init_pid)] == [pid]
        # the container's cgroups, in every hierarchy (the init's are the container's: engine create put it there)
        assert Path(f"/proc/{pid}/cgroup").read_text() == Path(f"/proc/{init_pid}/cgroup").read_text()
        assert Path(f"/proc/{pid}/cgroup").read_text() != Path("/proc/self/cgroup").read_text()
    finally:
        os.kill(pid, signal.SIGKILL)


def test_preserve_fds(engine: Engine, tmp_path: Path) -> None:
    container_id, _ = started(engine)
    secret = tmp_path / "secret"
    secret.write_text("passed along\n")
    script = "cat <&3; [ -e /proc/$$/fd/4 ] && echo fd4-leaked || echo fd4-closed"
    command = [ENGINE, "--root", str(engine.root), "exec", "--preserve-fds", "1", container_id, "sh", "-c", script]
    # fds 3 and 4 open in the engine; only 3 is preserved
    result = subprocess.run(
        ["sh", "-c", 'exec "$@" 3<"$0" 4<"$0"', str(secret), *command], capture_output=True, text=True, timeout=30
    )
    assert result.stdout.splitlines() == ["passed along", "fd4-closed"], result.stderr
    assert "fd 3 is not open" in one_line_error(engine("exec", "--preserve-fds", "2", container_id, "true"))


# --- terminal ----------------------------------------------------------------------------------------------


def test_tty_relays_the_pty(engine: Engine) -> None:
    container_id, _ = started(engine)
    result = engine(
        "exec", "-t", container_id, "sh", "-c", "tty; test -t 0 && echo stdin-tty", stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.replace("\r\n", "\n").splitlines()
    assert lines[0].startswith("/dev/pts/") and "stdin-tty" in lines, result.stdout


def test_tty_with_console_socket(engine: Engine, tmp_path: Path) -> None:
    container_id, _ = started(engine)
    with console.ConsoleSocket(str(tmp_path / "console.sock")) as listener:
        engine(
            "exec",
            "-t",
            "-d",
            "--console-socket",
            listener.path,
            container_id,
            "sh",
            "-c",
            "tty; echo done",
            check=True,
        )
        master = listener.receive_master(timeout=10)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the pty hung up, the process is gone
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
    lines = output.decode().replace("\r\n", "\n").splitlines()
    assert lines[0].startswith("/dev/pts/") and lines[1] == "done", output
    error = one_line_error(engine("exec", "-t", "-d", container_id, "true"))
    assert "console socket" in error


# --- CVE-2019-5736 -----------------------------------------------------------------------------------------


PROBE = """
for p in /proc/[0-9]*; do
    n=${p#/proc/}
    exe=$(readlink $p/exe) || exe=DENIED
    if cat $p/exe >/dev/null 2>&1; then opened=yes; else opened=no; fi
    fd=$(readlink $p/fd/0) || fd=DENIED
    echo "$n $exe $opened $fd"
done
"""


def probe_proc(engine: Engine, container_id: str) -> dict[str, list[str]]:
    """What the container's root sees of every process: in-container pid -> [exe link, exe opened, fd 0 link]."""
    probe = engine("exec", container_id, "sh", "-c", PROBE, check=True).stdout
    return {line.split()[0]: line.split()[1:] for line in probe.splitlines()}


def test_container_cannot_reach_the_engine_binary_while_exec_joins(engine: Engine, tmp_path: Path) -> None:
    """CVE-2019-5736: a process in the container opened /proc/<runc>/exe while runc joined the container,
    then wrote runc's binary on the host through it. Here the engine's binary is the host's Python.

    Made deterministic with a wait the container itself controls: its /etc/passwd is a fifo (bind-mounted from
    the host) and the exec'd process.json has no HOME, so the engine, already forked into the container's pid
    namespace but not yet exec'd, blocks looking HOME up there (as runc does). While it is stuck, a second
    exec (with HOME, so it does not block) scans /proc as the container's root: readlink (the same check
    as an O_PATH open of the link) and open for reading must both be refused for the engine's process,
    and nothing visible may resolve to a host binary. Nothing here ever opens an exe link for writing.
    """
    fifo = tmp_path / "passwd"
    os.mkfifo(fifo)
    mounts = [
        *default_mounts(),
        {"destination": "/etc/passwd", "type": "bind", "source": str(fifo), "options": ["bind"]},
    ]

    def home_set(config: dict[str, Any]) -> None:
        config["process"]["env"].append("HOME=/root")  # the init and the probe must not read the fifo

    container_id, init_pid = started(engine, write_config(engine.bundle(["sleep", "600"], mounts=mounts), home_set))
    process_json = tmp_path / "process.json"
    process_json.write_text(json.dumps({"args": ["true"], "cwd": "/", "env": ["PATH=/bin"]}))
    with tempfile.TemporaryFile() as err:
        stuck = subprocess.Popen(
            [ENGINE, "--root", str(engine.root), "exec", "--process", str(process_json), container_id],
            stdout=err,
            stderr=err,
        )
        try:
            joined = wait_for(lambda: processes_in_pid_ns_of(init_pid))
            assert joined and len(joined) == 1, joined
            host_pid, _, nspid = joined[0]
            assert "python" in os.readlink(f"/proc/{host_pid}/exe")  # the window is real: the host's interpreter
            seen = probe_proc(engine, container_id)
            assert seen[str(nspid[-1])] == ["DENIED", "no", "DENIED"], seen
            assert seen["1"] == ["/bin/busybox", "yes", "/dev/null"], seen  # the probe can read a normal process
            assert all(exe in ("DENIED", "/bin/busybox") for exe, _, _ in seen.values()), seen
        finally:
            with contextlib.suppress(OSError):  # release the engine (ENXIO if it is not waiting any more)
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                os.write(fd, b"root:x:0:0:root:/root:/bin/sh\n")
                os.close(fd)
            try:
                code = stuck.wait(10)
            finally:
                stuck.kill()
                stuck.wait()
            err.seek(0)
            message = err.read().decode()
        assert code == 0, message


class ExecveAgent:
    """A seccomp agent at linux.seccomp.listenerPath for a filter that notifies on execve: it lets every execve
    through, except the first one on the `hold`-th connection (0: the init's, 1: the first exec's...), which it
    holds until release(). Notifications are answered with SECCOMP_USER_NOTIF_FLAG_CONTINUE."""

    def __init__(self, path: Path, hold: int) -> None:
        self.path = path
        self.hold = hold
        self.held = threading.Event()
        self._release = threading.Event()
        self._stop = threading.Event()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.server.bind(str(path))
        self.server.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        index = 0
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, index), daemon=True).start()
            index += 1

    def _serve(self, conn: socket.socket, index: int) -> None:
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
            while conn.recv(1 << 16):
                pass
        if not fds:
            return
        fd, hold = fds[0], index == self.hold
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        try:
            while not self._stop.is_set():
                events = poller.poll(100)
                if not events:
                    continue
                if events[0][1] & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    return  # no process uses the filter any more
                request = seccomp.notify_receive(fd)
                if hold:
                    hold = False
                    self.held.set()
                    self._release.wait(30)
                with contextlib.suppress(OSError):  # ENOENT: that process is gone
                    seccomp.notify_respond(fd, request.id, flags=1)
        except OSError:
            return
        finally:
            os.close(fd)

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self._release.set()
        self._stop.set()
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()


def test_dropped_to_the_containers_capabilities_the_engine_is_still_out_of_reach(
    engine: Engine, tmp_path: Path
) -> None:
    """The narrowest window, where non-dumpable is the only barrier: the exec'd process has dropped to the
    container's capabilities and user, but execve has not happened yet, so it is still the host's interpreter.
    (Before the drop, the kernel's capability-subset rule for /proc access already keeps the container out.)

    Held open deterministically by a seccomp agent: the container's filter notifies on execve, and the agent
    holds the exec's execve while the container's root, with the very same capabilities, scans /proc.
    """
    agent = ExecveAgent(tmp_path / "agent.sock", hold=1)  # 0: the init's connection, 1: the exec's
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": str(agent.path),
        "syscalls": [{"names": ["execve", "execveat"], "action": "SCMP_ACT_NOTIFY"}],
    }
    try:
        bundle = write_config(engine.bundle(["sleep", "600"]), lambda c: c["linux"].update(seccomp=profile))
        container_id, init_pid = started(engine, bundle)
        with tempfile.TemporaryFile() as err:
            stuck = subprocess.Popen(
                [ENGINE, "--root", str(engine.root), "exec", container_id, "true"], stdout=err, stderr=err
            )
            try:
                assert agent.held.wait(20), "the exec's execve never reached the agent"
                [(host_pid, _, nspid)] = processes_in_pid_ns_of(init_pid)
                assert "python" in os.readlink(f"/proc/{host_pid}/exe")
                masks = cap_masks(Path(f"/proc/{host_pid}/status").read_text())
                assert masks["CapEff"] == masks["CapPrm"] == names_to_mask(DEFAULT_CAPS)  # already dropped
                seen = probe_proc(engine, container_id)
                assert seen[str(nspid[-1])] == ["DENIED", "no", "DENIED"], seen
                assert seen["1"] == ["/bin/busybox", "yes", "/dev/null"], seen
            finally:
                agent.release()
                try:
                    code = stuck.wait(10)
                finally:
                    stuck.kill()
                    stuck.wait()
                err.seek(0)
                message = err.read().decode()
            assert code == 0, message
    finally:
        agent.close()
