"""runc's command-line behaviours that scripts and supervisors rely on (issue #8), checked side by side: the same
commands against runc 1.1.5 (/usr/sbin/runc, the reference) and engine, each with its own --root, asserting the
same exit status, file or output shape; where engine deliberately differs, the test says so and why.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.setup import host_mount_ns
from engine.spec.default import default_config
from tests import seccomp_probe
from tests.integration.conftest import ENGINE, Engine

RUNC = "/usr/sbin/runc"
pytestmark = pytest.mark.skipif(not os.access(RUNC, os.X_OK), reason=f"{RUNC} (the reference runtime) missing")

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
TEXT_LINE = re.compile(rf'^time="{TIME}" level=(?P<level>debug|info|warning|error) msg=(\S*|".*")$')


class Runtime:
    """One runtime binary with a private --root; bundles are its own, on the shared busybox rootfs."""

    def __init__(self, name: str, binary: str, root: Path, tmp: Path, rootfs: Path, new_id: Callable[[], str]) -> None:
        self.name = name
        self.rootfs = rootfs
        self.binary = binary
        self.root = root
        self.tmp = tmp / name
        self.tmp.mkdir()
        self.new_id = new_id
        self.count = 0

    def __call__(self, *args: str, cwd: str | Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        # Files, not pipes: a created container's init inherits them and would hold a pipe open.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            code = subprocess.run(
                [self.binary, "--root", str(self.root), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=timeout,
                cwd=cwd,
            ).returncode
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(args, code, out.read(), err.read())

    def check(self, *args: str, **kw: Any) -> subprocess.CompletedProcess:
        result = self(*args, **kw)
        assert result.returncode == 0, f"{self.name} {' '.join(args)}: {result.returncode} {result.stderr}"
        return result

    def bundle(self, args: list[str], edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
        self.count += 1
        bundle = self.tmp / f"bundle-{self.count}"
        bundle.mkdir()
        config = default_config(args, terminal=False)
        config["ociVersion"] = "1.0.2-dev"  # what runc 1.1.5 accepts
        config["root"] = {"path": str(self.rootfs), "readonly": True}
        if edit is not None:
            edit(config)
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    def shell(self, script: str, **env: str) -> subprocess.CompletedProcess:
        """`sh -ec script` in a mount namespace of its own (unshare -m, private), with $RT the runtime and its
        --root: what the runtime does to "the host's" mount table stays in there and goes away with it."""
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-ec", script]
        env = {**os.environ, **env, "RT": f"{self.binary} --root {self.root}"}
        return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)

    def status(self, container_id: str) -> str:
        return json.loads(self.check("state", container_id).stdout)["status"]

    def wait_status(self, container_id: str, status: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.status(container_id) != status:
            assert time.monotonic() < deadline, f"{self.name}: {container_id} never became {status}"
            time.sleep(0.05)


@pytest.fixture
def runtimes(engine: Engine, tmp_path: Path, rootfs: Path) -> Iterator[list[Runtime]]:
    """[runc, engine]. engine's ids go through the engine fixture (cleanup and the leftover checks); runc's
    containers are force-deleted here, and the test fails if any was left."""
    counter = iter(range(1000))
    runc_id = lambda: f"rc-{os.getpid()}-{next(counter)}"  # noqa: E731
    runc = Runtime("runc", RUNC, tmp_path / "runc-root", tmp_path, rootfs, runc_id)
    eng = Runtime("engine", ENGINE, engine.root, tmp_path, rootfs, engine.new_id)
    yield [runc, eng]
    left = runc("list", "-q").stdout.split() if runc.root.exists() else []
    for cid in left:
        runc("delete", "--force", cid)
    assert left == [], "runc containers were left behind"


def log_lines(path: Path, fmt: str) -> list[dict[str, str]]:
    """Every line of a --log file as {level, msg, time}; each must have runc's (logrus's) shape."""
    entries = []
    for line in path.read_text().splitlines():
        if fmt == "json":
            entry = json.loads(line)
            assert {"level", "msg", "time"} <= set(entry) and re.fullmatch(TIME, entry["time"]), line
            assert list(entry) == sorted(entry), line  # logrus sorts the keys
        else:
            match = TEXT_LINE.match(line)
            assert match, line
            entry = {"level": match["level"]}
        entries.append(entry)
    return entries


# -- kill ID 0 -----------------------------------------------------------------------------------------------


def test_kill_with_signal_zero_asks_whether_the_init_is_alive(runtimes: list[Runtime]) -> None:
    seen = {}
    for rt in runtimes:
        cid = rt.new_id()
        rt.check("create", "--bundle", str(rt.bundle(["sleep", "60"])), cid)
        alive = rt("kill", cid, "0")
        status_after = rt.status(cid)
        rt.check("kill", cid, "KILL")
        rt.wait_status(cid, "stopped")
        stopped = rt("kill", cid, "0")
        rt.check("delete", cid)
        seen[rt.name] = (alive.returncode, status_after, stopped.returncode, bool(stopped.stderr.strip()))
    # Alive: exit 0, and signal 0 changed nothing. Stopped: exit 1 with an error ("container not running").
    assert seen["engine"] == seen["runc"] == (0, "created", 1, True)


def test_list_names_the_owner_of_each_container(runtimes: list[Runtime]) -> None:
    # runc's OWNER (table and --format json) is the user owning the container's state directory; containerd
    # and scripts read it from `list --format json`. runc's `state` leaves it empty, and so does engine's.
    seen = {}
    for rt in runtimes:
        cid = rt.new_id()
        rt.check("create", "--bundle", str(rt.bundle(["sleep", "60"])), cid)
        listed = {c["id"]: c for c in json.loads(rt.check("list", "--format", "json").stdout)}
        table = rt.check("list").stdout.splitlines()
        state_owner = json.loads(rt.check("state", cid).stdout).get("owner", "")
        rt.check("delete", "--force", cid)
        row = next(line.split() for line in table if line.startswith(cid))
        seen[rt.name] = (listed[cid]["owner"], row[-1], state_owner)
    assert seen["engine"] == seen["runc"] == ("root", "root", "")


# -- --log and --debug ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_file_is_created_without_debug(runtimes: list[Runtime], tmp_path: Path, fmt: str) -> None:
    seen = {}
    for rt in runtimes:
        quiet, failing = tmp_path / f"{rt.name}-quiet.log", tmp_path / f"{rt.name}-failing.log"
        cid = rt.new_id()
        rt.check("--log", str(quiet), "--log-format", fmt, "create", "--bundle", str(rt.bundle(["sleep", "60"])), cid)
        rt.check("--log", str(quiet), "--log-format", fmt, "state", cid)
        rt.check("delete", "--force", cid)
        rt("--log", str(failing), "--log-format", fmt, "state", "no-such-container")
        seen[rt.name] = (
            quiet.exists(),
            [e["level"] for e in log_lines(quiet, fmt)],
            [e["level"] for e in log_lines(failing, fmt)],
        )
    # The file exists even when nothing was logged; a failure is one error line.
    assert seen["engine"] == seen["runc"] == (True, [], ["error"])


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_writes_a_line_per_step(runtimes: list[Runtime], tmp_path: Path, fmt: str) -> None:
    counts: dict[str, dict[str, int]] = {}
    for rt in runtimes:
        cid = rt.new_id()
        bundle = str(rt.bundle(["sleep", "60"]))
        commands = {
            "create": ["create", "--bundle", bundle, cid],
            "start": ["start", cid],
            "kill": ["kill", cid, "KILL"],
        }
        counts[rt.name] = {}
        for name, args in commands.items():
            log = tmp_path / f"{rt.name}-{name}.log"
            rt.check("--debug", "--log", str(log), "--log-format", fmt, *args)
            levels = [e["level"] for e in log_lines(log, fmt)]
            counts[rt.name][name] = levels.count("debug")
        rt.wait_status(cid, "stopped")
        log = tmp_path / f"{rt.name}-delete.log"
        rt.check("--debug", "--log", str(log), "--log-format", fmt, "delete", cid)
        counts[rt.name]["delete"] = [e["level"] for e in log_lines(log, fmt)].count("debug")
    # Both log create's steps at debug level (runc: its nsexec stages; engine: validated, claimed the id,
    # cgroups, forked, hooks, created).
    assert counts["runc"]["create"] > 0 and counts["engine"]["create"] >= 6
    # runc 1.1.5 logs nothing for start, kill and delete; engine logs their steps too (more lines of the same
    # shape, which the shim and conmon, reading the file for errors, skip).
    assert counts["runc"]["start"] == counts["runc"]["kill"] == counts["runc"]["delete"] == 0
    assert counts["engine"]["start"] >= 2 and counts["engine"]["kill"] >= 1 and counts["engine"]["delete"] >= 2


def test_debug_without_a_log_file_goes_to_stderr(runtimes: list[Runtime]) -> None:
    for rt in runtimes:
        cid = rt.new_id()
        result = rt.check("--debug", "create", "--bundle", str(rt.bundle(["sleep", "60"])), cid)
        debug = [m for m in map(TEXT_LINE.match, result.stderr.splitlines()) if m and m["level"] == "debug"]
        assert debug, f"{rt.name}: no debug line on stderr: {result.stderr!r}"
        rt.check("delete", "--force", cid)


# -- ps ------------------------------------------------------------------------------------------------------


def host_ps_header(*args: str) -> str:
    return subprocess.run(["ps", *args], capture_output=True, text=True, check=True).stdout.splitlines()[0]


def test_ps_prints_the_host_ps_table_of_the_containers_processes(runtimes: list[Runtime]) -> None:
    for rt in runtimes:
        cid = rt.new_id()
        rt.check("run", "--detach", "--bundle", str(rt.bundle(["sh", "-c", "sleep 61 & exec sleep 62"])), cid)
        pids = json.loads(rt.check("ps", "--format", "json", cid).stdout)
        assert len(pids) == 2, f"{rt.name}: {pids}"
        table = rt.check("ps", cid).stdout.splitlines()
        assert table[0] == host_ps_header("-ef"), rt.name
        assert sorted(int(line.split()[1]) for line in table[1:]) == sorted(pids), rt.name
        assert sorted(line.split(None, 7)[7] for line in table[1:]) == ["sleep 61", "sleep 62"], rt.name
        # Options after the id replace -ef.
        custom = rt.check("ps", cid, "-o", "pid,comm").stdout.splitlines()
        assert custom[0].split() == ["PID", "COMMAND"], rt.name
        assert sorted((int(p), c) for p, c in (line.split() for line in custom[1:])) == sorted(
            (pid, "sleep") for pid in pids
        ), rt.name
        # `--format json` ignores ps options.
        assert json.loads(rt.check("ps", "--format", "json", cid, "-o", "pid").stdout) == pids
        # Deliberate difference: runc passes a `--` after the id on to ps, which refuses it ("garbage option");
        # engine takes it as the usual end of its own options.
        dashed = rt("ps", cid, "--", "-o", "pid,comm")
        if rt.name == "runc":
            assert dashed.returncode == 1 and "garbage option" in dashed.stderr
        else:
            assert dashed.returncode == 0 and dashed.stdout.splitlines() == custom
        rt.check("delete", "--force", cid)


def test_ps_of_a_stopped_container_is_the_header_alone(runtimes: list[Runtime]) -> None:
    for rt in runtimes:
        cid = rt.new_id()
        rt.check("create", "--bundle", str(rt.bundle(["sleep", "60"])), cid)
        rt.check("kill", cid, "KILL")
        rt.wait_status(cid, "stopped")
        assert rt.check("ps", cid).stdout.splitlines() == [host_ps_header("-ef")], rt.name
        # runc prints Go's nil slice as `null`; engine an empty list, which is what a list of pids is.
        assert rt.check("ps", "--format", "json", cid).stdout.strip() == ("null" if rt.name == "runc" else "[]")
        rt.check("delete", cid)


# -- the init's name -----------------------------------------------------------------------------------------


def test_a_created_containers_init_is_named_init(runtimes: list[Runtime]) -> None:
    seen = {}
    for rt in runtimes:
        cid = rt.new_id()
        rt.check("create", "--bundle", str(rt.bundle(["sleep", "60"])), cid)
        pid = json.loads(rt.check("state", cid).stdout)["pid"]
        (line,) = rt.check("ps", cid).stdout.splitlines()[1:]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        seen[rt.name] = (line.split(None, 7)[7], [os.path.basename(a) for a in argv], comm)
        rt.check("delete", "--force", cid)
    # runc's shows as `/usr/sbin/runc init` (comm `runc:[2:INIT]`), engine's as `engine init <id>`: no longer
    # create's command line, which looked like a second `create` that never ends.
    assert seen["runc"] == ("/usr/sbin/runc init", [b"runc", b"init"], "runc:[2:INIT]")
    engine_id = seen["engine"][1][2].decode()
    comm = f"engine init {engine_id}"[:15]  # the kernel keeps 15 bytes of a comm
    assert seen["engine"] == (f"engine init {engine_id}", [b"engine", b"init", engine_id.encode()], comm)
    assert engine_id.startswith("t-")


# -- hooks' working directories ------------------------------------------------------------------------------

STAGES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def test_hooks_run_where_runcs_do(runtimes: list[Runtime], tmp_path: Path, rootfs: Path) -> None:
    """Each hook records `pwd`. runc's create and run work in the bundle directory and its init enters the rootfs
    before createContainer; startContainer runs in process.cwd; poststop in `delete`'s caller's directory."""
    elsewhere, other = tmp_path / "elsewhere", tmp_path / "other"
    elsewhere.mkdir()
    other.mkdir()
    seen = {}
    for rt in runtimes:
        out = tmp_path / f"{rt.name}-out"
        out.mkdir()

        def edit(config: dict[str, Any], out: Path = out) -> None:
            config["process"]["cwd"] = "/usr"
            config["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(out), "options": ["rbind"]})
            config["hooks"] = {
                stage: [{"path": "/bin/sh", "args": ["sh", "-c", f"echo {stage} $(pwd) >> {where}/log"]}]
                for stage in STAGES
                # startContainer runs in the container: its path and its file are the container's
                for where in ["/mnt" if stage == "startContainer" else str(out)]
            }

        bundle = rt.bundle(["true"], edit)
        cid = rt.new_id()
        rt.check("create", "--bundle", str(bundle), cid, cwd=elsewhere)
        rt.check("start", cid, cwd="/")
        rt.wait_status(cid, "stopped")
        rt.check("delete", cid, cwd=other)
        rt.check("run", "--bundle", str(bundle), rt.new_id(), cwd=elsewhere)
        lines = [line.split(" ", 1) for line in (out / "log").read_text().splitlines()]
        names = {str(bundle): "<bundle>", str(rootfs): "<rootfs>", str(other): "<caller>", str(elsewhere): "<wrong>"}
        seen[rt.name] = [(stage, names.get(pwd, pwd)) for stage, pwd in lines]
    expected = {
        "prestart": "<bundle>",
        "createRuntime": "<bundle>",
        "createContainer": "<rootfs>",
        "startContainer": "/usr",
        "poststart": "<bundle>",
    }
    for name, lines in seen.items():
        first, second = lines[:6], lines[6:]
        assert dict(first) == {**expected, "poststop": "<caller>"}, name  # create, start, delete
        assert dict(second) == {**expected, "poststop": "<bundle>"}, name  # run
    # (The order differs: runc runs poststart during create; conformance/deviations.py hooks_start_phase.)


# -- seccomp: ENOSYS for syscalls newer than the profile -----------------------------------------------------


@pytest.mark.skipif(not seccomp_probe.supported(), reason="the probe program is x86_64 machine code")
@pytest.mark.parametrize("architectures", [["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], None])
def test_seccomp_newer_syscalls_get_enosys(runtimes: list[Runtime], tmp_path: Path, architectures: Any) -> None:
    """A profile from before clone3 (default ERRNO(EPERM)): a syscall above the highest one it names fails with
    ENOSYS (so libc falls back), one it knows but does not allow gets the default action. As runc 1.1 does,
    only for the architectures the profile lists: without any, no stub."""
    probes = tmp_path / "probes"
    probes.mkdir()
    for name, number in seccomp_probe.PROBES.items():
        seccomp_probe.write_probe(probes, name, number)
    script = 'for p in /mnt/*; do "$p"; echo "${p#/mnt/} $?"; done'
    extra = {"architectures": architectures} if architectures else {}

    def edit(config: dict[str, Any]) -> None:
        mount = {"destination": "/mnt", "type": "bind", "source": str(probes), "options": ["rbind", "ro"]}
        config["mounts"].append(mount)
        config["linux"]["seccomp"] = seccomp_probe.profile_before_clone3(**extra)

    seen = {}
    for rt in runtimes:
        out = rt.check("run", "--bundle", str(rt.bundle(["sh", "-c", script], edit)), rt.new_id()).stdout
        seen[rt.name] = dict(line.split() for line in out.splitlines())
    enosys = "38" if architectures else "1"
    expected = {"getcpu": "1", "clone3": enosys, "openat2": enosys, "faccessat2": enosys, "unknown": enosys}
    assert seen["engine"] == seen["runc"] == expected


# -- no mount namespace --------------------------------------------------------------------------------------


def without_mount_namespace(config: dict[str, Any]) -> None:
    """config-linux.md: an unlisted namespace is the runtime's; no property that needs a mount."""
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "mount"]
    config["mounts"] = []
    for key in ("maskedPaths", "readonlyPaths"):
        config["linux"].pop(key, None)
    config["root"]["readonly"] = False


def test_without_a_mount_namespace_the_container_shares_the_runtimes(runtimes: list[Runtime]) -> None:
    """root.path "/": the container sees the runtime's own mount namespace and files. Each runtime runs in a
    throwaway mount namespace (unshare -m) that stands for "the host's": runc 1.1.5 mounts in it (the rootfs bind,
    and it makes / rslave); engine leaves its mount table as it was."""
    script = """
        readlink /proc/self/ns/mnt; wc -l < /proc/self/mountinfo
        $RT run --bundle "$B" "$ID"
        wc -l < /proc/self/mountinfo
    """
    seen = {}
    for rt in runtimes:

        def edit(config: dict[str, Any]) -> None:
            without_mount_namespace(config)
            config["root"] = {"path": "/"}

        bundle = rt.bundle(["readlink", "/proc/self/ns/mnt", "/proc/self/ns/pid"], edit)
        result = rt.shell(script, B=str(bundle), ID=rt.new_id())
        assert result.returncode == 0, f"{rt.name}: {result.stderr}"
        runtime_ns, mounts_before, container_ns, pid_ns, mounts_after = result.stdout.split()
        assert container_ns == runtime_ns != os.readlink("/proc/self/ns/mnt"), rt.name  # inherited, not new
        assert pid_ns != os.readlink("/proc/self/ns/pid"), rt.name  # the listed ones are new
        seen[rt.name] = int(mounts_after) - int(mounts_before)
    # runc leaves mounts behind in the namespace it was given (never unmounted: there is no container ns to take
    # them away); engine mounts nothing there.
    assert seen["runc"] > 0 and seen["engine"] == 0


def test_without_a_mount_namespace_the_root_is_root_path_for_exec_too(runtimes: list[Runtime], tmp_path: Path) -> None:
    """A root with /proc mounted beforehand (engine mounts nothing, and the init needs /proc, as runc's does). The
    container's process and an exec'd one see that root; runc 1.1.5's exec'd process gets the host's root."""
    script = """
        mount -t proc proc "$R/proc"
        $RT create --bundle "$B" "$ID"; $RT start "$ID"
        $RT exec "$ID" cat /marker || echo "exec: no marker"
        $RT delete --force "$ID"
    """
    seen = {}
    for rt in runtimes:
        rootfs = tmp_path / f"{rt.name}-rootfs"
        subprocess.run(["cp", "-a", str(rt.rootfs), str(rootfs)], check=True)
        (rootfs / "marker").write_text(f"inside {rt.name}'s root\n")

        def edit(config: dict[str, Any], rootfs: Path = rootfs) -> None:
            without_mount_namespace(config)
            config["root"] = {"path": str(rootfs)}

        result = rt.shell(script, B=str(rt.bundle(["sleep", "60"], edit)), ID=rt.new_id(), R=str(rootfs))
        assert result.returncode == 0, f"{rt.name}: {result.stderr}"
        seen[rt.name] = result.stdout.strip()
    assert seen["engine"] == "inside engine's root"
    assert seen["runc"] == "exec: no marker"  # runc's exec'd process runs in the host's root


@pytest.mark.parametrize(
    ("where", "edit"),
    [
        ("mounts", lambda c: c["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})),
        ("linux.maskedPaths", lambda c: c["linux"].update(maskedPaths=["/proc/kcore"])),
        ("linux.readonlyPaths", lambda c: c["linux"].update(readonlyPaths=["/proc/sys"])),
        ("root.readonly", lambda c: c["root"].update(readonly=True)),
        ("linux.rootfsPropagation", lambda c: c["linux"].update(rootfsPropagation="private")),
        (
            "linux.devices",
            lambda c: c["linux"].update(devices=[{"path": "/dev/x", "type": "c", "major": 1, "minor": 3}]),
        ),
        ("process.terminal", lambda c: c["process"].update(terminal=True)),
    ],
)
def test_without_a_mount_namespace_what_needs_a_mount_is_refused(
    runtimes: list[Runtime], where: str, edit: Callable[[dict[str, Any]], None]
) -> None:
    """engine refuses, naming the property: it would have to mount in the host's namespace (runc does: it mounts
    config.json's mounts there and leaves them; it refuses masked and read-only paths)."""
    _, eng = runtimes

    def config_edit(config: dict[str, Any]) -> None:
        without_mount_namespace(config)
        config["root"] = {"path": "/"}
        edit(config)

    # A terminal needs a --console-socket to get past create's own check for one. In a throwaway mount namespace:
    # were the check ever lost, what the property asks would be done to that namespace, not to the host's.
    socket = f"--console-socket {eng.tmp / 'console.sock'}" if where == "process.terminal" else ""
    result = eng.shell(
        f'$RT create {socket} --bundle "$B" "$ID"', B=str(eng.bundle(["true"], config_edit)), ID=eng.new_id()
    )
    assert result.returncode == 1
    assert result.stderr == f"engine: config.json: {where}: {host_mount_ns.WHY}\n"


def test_without_a_mount_namespace_runc_refuses_masked_paths_too(runtimes: list[Runtime]) -> None:
    runc, _ = runtimes

    def edit(config: dict[str, Any]) -> None:
        without_mount_namespace(config)
        config["root"] = {"path": "/"}
        config["linux"]["maskedPaths"] = ["/proc/kcore"]

    result = runc.shell('$RT run --bundle "$B" "$ID"', B=str(runc.bundle(["true"], edit)), ID=runc.new_id())
    assert result.returncode == 1 and "without a private MNT namespace" in result.stderr
