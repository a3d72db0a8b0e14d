"""The cgroup behaviours of issue #8, side by side with runc 1.1.5 (Debian's, the reference): the same bundle and
the same commands under both runtimes, and the same observable result (exit status, cgroup files, what the
container sees), or engine's deliberate difference asserted with the reason.

Each container gets a relative cgroupsPath below a private "engine-test-<hex>" directory (runc and engine both
place a relative path below the caller's own cgroup on v1, so the test knows every directory); the fixture kills
and removes whatever is left there. These need this machine's cgroup v1 (hybrid) layout; the cgroup v2 side of
the same features runs in the qemu guest (test_container_cgroups_v2.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.cgroups import fs as cgfs
from engine.cgroups.layout import Layout, detect, directory_in
from engine.spec.default import default_config
from tests.integration.conftest import Engine
from tests.integration.test_lifecycle import wait_for

RUNC = "/usr/sbin/runc"
HOST = detect() if os.geteuid() == 0 else Layout("v2")
RUNTIMES = ("runc", "engine")

pytestmark = [
    pytest.mark.skipif(not os.access(RUNC, os.X_OK), reason=f"{RUNC} (the reference runtime) missing"),
    pytest.mark.skipif(HOST.mode not in ("v1", "hybrid"), reason="runc 1.1.5 side by side on cgroup v1 hierarchies"),
]


class Both:
    """Runs bundles under runc and engine, each with its own --root, and knows where their cgroups are."""

    def __init__(self, engine: Engine, tmp_path: Path) -> None:
        self.engine = engine
        self.tmp = tmp_path
        self.runc_root = tmp_path / "runc-root"
        self.top = f"engine-test-{uuid.uuid4().hex[:10]}"
        self.count = 0
        self.runc_ids: list[str] = []
        for h in HOST.v1:  # made here so that the test can give it a real-time budget (cpu.rt_runtime_us)
            os.makedirs(directory_in(h, self.top), exist_ok=True)
            if "cpuset" in h.controllers:
                for name in ("cpuset.cpus", "cpuset.mems"):
                    parent = os.path.dirname(directory_in(h, self.top))
                    Path(directory_in(h, self.top), name).write_text(Path(parent, name).read_text())

    def config(self, args: list[str], **linux: Any) -> dict[str, Any]:
        config = default_config(args, terminal=False)
        config["ociVersion"] = "1.0.2-dev"  # what runc 1.1.5 accepts
        config["root"] = {"path": str(self.engine.rootfs), "readonly": True}
        self.count += 1
        config["linux"]["cgroupsPath"] = f"{self.top}/c{self.count}"
        config["linux"].update(linux)
        return config

    def bundle(self, config: dict[str, Any]) -> Path:
        bundle = self.tmp / f"bundle-{self.count}-{uuid.uuid4().hex[:6]}"
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    def __call__(
        self, which: str, *args: str, check: bool = False, timeout: float = 30, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        if which == "engine":
            result = self.engine(*args, timeout=timeout, input=input)
        else:
            with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
                code = subprocess.run(
                    [RUNC, "--root", str(self.runc_root), *args],
                    input=input,
                    stdin=None if input is not None else subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    timeout=timeout,
                ).returncode
                out.seek(0)
                err.seek(0)
                result = subprocess.CompletedProcess(list(args), code, out.read(), err.read())
        if check:
            assert result.returncode == 0, f"{which} {' '.join(args)} failed: {result.stderr}"
        return result

    def new_id(self, which: str) -> str:
        if which == "engine":
            return self.engine.new_id()
        cid = f"sbs-{uuid.uuid4().hex[:10]}"
        self.runc_ids.append(cid)
        return cid

    def run(self, which: str, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self(which, "run", "--bundle", str(self.bundle(config)), self.new_id(which))

    def start(self, which: str, config: dict[str, Any]) -> str:
        cid = self.new_id(which)
        self(which, "run", "--detach", "--bundle", str(self.bundle(config)), cid, check=True)
        return cid

    def pid(self, which: str, cid: str) -> int:
        return int(json.loads(self(which, "state", cid, check=True).stdout)["pid"])

    def dirs(self, config: dict[str, Any]) -> dict[str, str]:
        """The container's cgroup directory in each v1 hierarchy (both runtimes place a relative path there)."""
        return {h.name: directory_in(h, config["linux"]["cgroupsPath"]) for h in HOST.v1}

    def cleanup(self) -> list[str]:
        for cid in self.runc_ids:
            self("runc", "delete", "--force", cid)
        left = []
        # runc also makes the path in a hybrid host's cgroup2 hierarchy: a runc container the test had to kill
        # by hand leaves it there.
        for h in (*HOST.v1, *([HOST.unified] if HOST.unified is not None else [])):
            top = directory_in(h, self.top)
            if not os.path.isdir(top):
                continue
            for directory in reversed(list(cgfs.walk_down(top))):
                for pid in cgfs.pids_in(directory):
                    left.append(f"process {pid} in {directory}")
                    os.kill(pid, signal.SIGKILL)
                try:
                    cgfs.rmdir_tree(directory)
                except cgfs.CgroupError as err:
                    left.append(str(err))
        return left


@pytest.fixture
def both(engine: Engine, tmp_path: Path) -> Iterator[Both]:
    b = Both(engine, tmp_path)
    try:
        yield b
    finally:
        for cid in list(engine.ids):
            engine("delete", "--force", cid)
        left = b.cleanup()
    assert left == [], "left behind"


def cgroup_of(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cgroup").read_text().splitlines()


def hierarchy_with(controller: str) -> str:
    h = HOST.v1_for(controller)
    assert h is not None
    return h.name


# ----- exec ------------------------------------------------------------------------------------------------------


def test_exec_joins_the_containers_cgroup_in_every_hierarchy(both: Both) -> None:
    """An exec'd process is where the init is in every hierarchy, named ones (name=systemd) included; engine's
    init also has a cgroup of its own in the cgroup2 hierarchy of this hybrid host, and the process joins it."""
    for which in RUNTIMES:
        config = both.config(["sleep", "60"])
        cid = both.start(which, config)
        pid_file = both.tmp / f"exec-{which}.pid"
        both(which, "exec", "--detach", "--pid-file", str(pid_file), cid, "sleep", "60", check=True)
        init, execd = cgroup_of(both.pid(which, cid)), cgroup_of(int(pid_file.read_text()))
        assert execd == init, which
        path = "/" + config["linux"]["cgroupsPath"]
        named = [line for line in init if ":name=" in line]
        assert named and all(line.endswith(path) for line in named), (which, named)
        unified = [line for line in init if line.startswith("0::")]
        if which == "engine" and HOST.unified is not None:
            assert unified == [f"0::{path}"]  # runc 1.1.5's fs driver leaves its processes in the caller's
    for which, cid in (("runc", both.runc_ids[0]), ("engine", both.engine.ids[0])):
        both(which, "delete", "--force", cid, check=True)


def test_exec_cgroup_flag(both: Both) -> None:
    """exec --cgroup [controller:]path: the same sub-cgroups joined, the same refusals; engine also refuses a
    sibling that shares the container cgroup's name as a prefix, which runc 1.1.5's string-prefix check lets in."""
    seen = {}
    memory, cpu, cpuacct = hierarchy_with("memory"), hierarchy_with("cpu"), hierarchy_with("cpuacct")
    for which in RUNTIMES:
        config = both.config(["sleep", "60"])
        cid = both.start(which, config)
        dirs = both.dirs(config)
        for name in {memory, cpu, cpuacct}:
            os.mkdir(os.path.join(dirs[name], "sub"))
        sibling = dirs[memory] + "-sibling"  # /<top>/c1 and /<top>/c1-sibling
        os.mkdir(sibling)
        joined = both(
            which, "exec", "--cgroup", "memory:sub", "--cgroup", "cpu,cpuacct:sub", cid, "cat", "/proc/self/cgroup"
        )
        assert joined.returncode == 0, (which, joined.stderr)
        seen[which] = joined.stdout.splitlines()
        top = both(which, "exec", "--cgroup", "/", cid, "cat", "/proc/self/cgroup", check=True)
        assert all(line.endswith(":/") for line in top.stdout.splitlines()), (which, top.stdout)
        for refused in ("..", "nonexistent", "cpu:nonexistent", "whaaat:/", "a:b:c", ":x"):
            result = both(which, "exec", "--cgroup", refused, cid, "true")
            assert result.returncode == 255, (which, refused, result.stderr)
        escape = both(which, "exec", "--cgroup", f"memory:../{os.path.basename(sibling)}", cid, "true")
        if which == "runc":
            assert escape.returncode == 0  # runc 1.1.5: "/<top>/c1-sibling" starts with "/<top>/c1"
        else:
            assert escape.returncode == 255
            assert "bad sub cgroup path: it leaves the container's cgroup" in escape.stderr
        both(which, "delete", "--force", cid, check=True)
    assert seen["engine"] == seen["runc"]
    lines = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in seen["engine"]}
    assert lines["memory"] == lines[cpu] == lines[cpuacct] == "/sub"
    assert lines["pids"] == "/"


def test_engine_cgroup_flag_errors_name_the_flag(both: Both) -> None:
    config = both.config(["sleep", "60"])
    cid = both.start("engine", config)
    dirs = both.dirs(config)
    for argument, message in (
        ("..", "--cgroup '..': bad sub cgroup path: it leaves the container's cgroup"),
        ("whaaat:/", "--cgroup whaaat:/: unknown controller whaaat (this container's hierarchies: "),
        ("nonexistent", "/nonexistent/cgroup.procs: No such file or directory"),
        (":x", "--cgroup ':x': empty controller name"),
    ):
        result = both("engine", "exec", "--cgroup", argument, cid, "true")
        assert result.returncode == 255 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    twice = both("engine", "exec", "--cgroup", "memory:a", "--cgroup", "memory:b", cid, "true")
    assert "controller memory given more than once" in twice.stderr
    bare = both("engine", "exec", "--cgroup", "memory:a", "--cgroup", "b", cid, "true")
    assert "missing the <controller>: prefix" in bare.stderr
    assert [e.path for d in dirs.values() for e in os.scandir(d) if e.is_dir()] == []  # nothing was made


@pytest.mark.skipif(HOST.v1_for("freezer") is None, reason="needs the v1 freezer")
def test_exec_in_a_paused_container(both: Both) -> None:
    """Refused without --ignore-paused; with it, the process joins the frozen cgroup and runs once resumed."""
    for which in RUNTIMES:
        cid = both.start(which, both.config(["sleep", "60"]))
        both(which, "pause", cid, check=True)
        refused = both(which, "exec", cid, "echo", "ok")
        assert refused.returncode == 255 and "paused" in refused.stderr, (which, refused.stderr)
        timer = threading.Timer(1.0, lambda which=which, cid=cid: both(which, "resume", cid, check=True))
        started = time.monotonic()
        timer.start()
        try:
            result = both(which, "exec", "--ignore-paused", cid, "echo", "ok", timeout=30)
        finally:
            timer.join()
        assert (result.returncode, result.stdout) == (0, "ok\n"), (which, result.stderr)
        assert time.monotonic() - started >= 0.9  # it waited for the resume
        both(which, "delete", "--force", cid, check=True)


# ----- update ----------------------------------------------------------------------------------------------------

# Each runs against both containers in turn; after each, the exit status (success or not) and every file below
# must be the same. Values runc 1.1.5 takes or refuses; comments mark the ones that change nothing.
UPDATES: list[list[str]] = [
    ["--memory", "50M"],
    ["--memory-reservation", "10m"],
    ["--memory", "1.5g"],
    ["--memory", "1 g"],
    ["--memory", "64MiB"],
    ["--memory-swap", "200M"],
    ["--memory-swap", "-1"],
    ["--memory", "-1"],
    ["--memory", "abc"],
    ["--memory", "-5"],
    ["--memory", "1.2.3"],
    ["--memory", "50Mx"],
    ["--memory", ""],  # nothing
    ["--kernel-memory", "50M"],  # ignored with a warning
    ["--kernel-memory-tcp", "50M"],
    ["--pids-limit", "50"],
    ["--pids-limit", "0"],  # nothing (runc 1.1.5)
    ["--pids-limit", "-1"],
    ["--pids-limit", "abc"],
    ["--cpu-share", "512"],
    ["--cpu-share", "0"],  # nothing
    ["--cpu-share", "-5"],
    ["--cpu-share", "1"],  # below the kernel's minimum: refused, 2 stays
    ["--cpu-period", "50000"],
    ["--cpu-quota", "20000"],
    ["--cpu-quota", "-1"],
    ["--cpu-period", "abc"],
    ["--cpu-rt-period", "900000"],
    ["--cpu-rt-runtime", "1000"],
    ["--cpuset-cpus", "0"],
    ["--cpuset-mems", "0"],
    ["--blkio-weight", "500"],
    ["--blkio-weight", "0"],  # nothing
    ["--l3-cache-schema", "L3:0=f"],
    ["--mem-bw-schema", "MB:0=50"],
    ["--memory", "96M", "--pids-limit", "20", "--cpu-share", "256"],
]
FILES = [
    ("memory", "memory.limit_in_bytes"),
    ("memory", "memory.soft_limit_in_bytes"),
    ("memory", "memory.memsw.limit_in_bytes"),
    ("pids", "pids.max"),
    ("cpu", "cpu.shares"),
    ("cpu", "cpu.cfs_period_us"),
    ("cpu", "cpu.cfs_quota_us"),
    ("cpu", "cpu.rt_period_us"),
    ("cpu", "cpu.rt_runtime_us"),
    ("cpuset", "cpuset.cpus"),
    ("cpuset", "cpuset.mems"),
    ("blkio", "blkio.weight"),
    ("blkio", "blkio.bfq.weight"),
]


def test_update_flags_as_runc(both: Both) -> None:
    containers = {}
    Path(directory_in(HOST.v1_for("cpu"), both.top), "cpu.rt_runtime_us").write_text("20000")  # type: ignore[arg-type]
    for which in RUNTIMES:
        config = both.config(["sleep", "120"])
        containers[which] = (both.start(which, config), both.dirs(config))

    def files(which: str) -> dict[str, str]:
        dirs = containers[which][1]
        read = {name: cgfs.read_or(dirs[hierarchy_with(controller)], name) for controller, name in FILES}
        return {name: (value or "").strip() for name, value in read.items()}

    for args in UPDATES:
        results = {which: both(which, "update", *args, containers[which][0]) for which in RUNTIMES}
        assert (results["engine"].returncode == 0) == (results["runc"].returncode == 0), (args, results)
        assert files("engine") == files("runc"), args
        if results["engine"].returncode:
            assert len(results["engine"].stderr.strip().splitlines()) == 1, results["engine"].stderr
    assert files("engine")["memory.limit_in_bytes"] == str(96 << 20)
    assert files("engine")["cpu.rt_runtime_us"] == "1000"

    # --resources: the flags are ignored, as runc ignores them (engine says so).
    document = json.dumps({"memory": {"limit": 100 << 20}}).encode()
    for which in RUNTIMES:
        result = both(which, "update", "--resources", "-", "--pids-limit", "7", containers[which][0], input=document)
        assert result.returncode == 0, result.stderr
    assert files("engine") == files("runc")
    assert files("engine")["pids.max"] == "20"
    warned = both("engine", "update", "-r", "-", "--pids-limit", "7", containers["engine"][0], input=document)
    assert "--pids-limit ignored: --resources gives all the changes" in warned.stderr
    kmem = both("engine", "update", "--kernel-memory", "50M", containers["engine"][0])
    assert "linux.resources.memory.kernel: ignored" in kmem.stderr
    rdt = both("engine", "update", "--l3-cache-schema", "L3:0=f", containers["engine"][0])
    assert "--l3-cache-schema: Intel RDT is not supported by engine" in rdt.stderr
    # A deliberate difference: nothing to change is an error for engine, success for runc.
    assert both("runc", "update", containers["runc"][0]).returncode == 0
    nothing = both("engine", "update", containers["engine"][0])
    assert nothing.returncode == 1 and "nothing to change" in nothing.stderr


# ----- devices --------------------------------------------------------------------------------------------------

DENY_ALL = {"allow": False, "access": "rwm"}


def test_device_access_grammar_as_runc(both: Both) -> None:
    """runc 1.1.5 takes access letters in any order, repeated, and ignores other characters; so does engine,
    which also says what it ignored. Empty, or nothing but other characters, is refused by both."""
    accesses = {11: "rwa", 12: "mrw", 13: "rr", 14: "rwmx", 15: " r", 16: "wr"}
    rules = [DENY_ALL] + [
        {"allow": True, "type": "c", "major": 1, "minor": m, "access": a} for m, a in accesses.items()
    ]
    script = "grep -E '^c 1:1[1-6] ' /sys/fs/cgroup/devices/devices.list | sort"
    outputs = {}
    for which in RUNTIMES:
        result = both.run(which, both.config(["sh", "-c", script], resources={"devices": rules}))
        assert result.returncode == 0, (which, result.stderr)
        outputs[which] = result
    assert outputs["engine"].stdout == outputs["runc"].stdout
    assert outputs["engine"].stdout.splitlines() == [
        "c 1:11 rw", "c 1:12 rwm", "c 1:13 r", "c 1:14 rwm", "c 1:15 r", "c 1:16 rw"
    ]  # fmt: skip
    warnings = [line for line in outputs["engine"].stderr.splitlines() if "ignoring" in line]
    assert [w.split("devices[", 1)[1].split("]", 1)[0] for w in warnings] == ["1", "4", "5"]
    for refused in ("", "x", "RW"):
        rule = {"allow": True, "type": "c", "major": 1, "minor": 11, "access": refused}
        for which in RUNTIMES:
            result = both.run(which, both.config(["true"], resources={"devices": [DENY_ALL, rule]}))
            assert result.returncode != 0, (which, refused)
        assert "linux.resources.devices[1].access: " in result.stderr and len(result.stderr.splitlines()) == 1


# ----- a cgroup that exists already -------------------------------------------------------------------------------


def test_a_cgroup_with_processes_is_shared_as_with_runc(both: Both) -> None:
    """runc 1.1.5 runs a container in a pre-existing cgroup that holds processes, silently; engine runs it too and
    warns. Neither kills the earlier process when the container goes."""
    for which in RUNTIMES:
        config = both.config(["echo", "ran"])
        earlier = subprocess.Popen(["sleep", "60"])
        try:
            for directory in both.dirs(config).values():
                os.makedirs(directory)
                for name in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset takes no process before these
                    if os.path.exists(os.path.join(directory, name)):
                        cgfs.write("test", directory, name, cgfs.read(os.path.dirname(directory), name).strip())
                cgfs.write("test", directory, "cgroup.procs", str(earlier.pid))
            result = both.run(which, config)
            assert (result.returncode, result.stdout) == (0, "ran\n"), (which, result.stderr)
            if which == "engine":
                assert "already has processes" in result.stderr and "shares it with them" in result.stderr
            else:
                assert "already" not in result.stderr  # runc 1.1.5 says nothing
            assert earlier.poll() is None, which  # alive
            assert all(str(earlier.pid) in cgfs.read(d, "cgroup.procs") for d in both.dirs(config).values())
        finally:
            earlier.kill()
            earlier.wait()


@pytest.mark.skipif(HOST.v1_for("freezer") is None, reason="needs the v1 freezer")
def test_a_frozen_cgroup_is_refused_as_by_runc(both: Both) -> None:
    for which in RUNTIMES:
        config = both.config(["echo", "ran"])
        freezer = both.dirs(config)[hierarchy_with("freezer")]
        os.makedirs(freezer)
        cgfs.write("test", freezer, "freezer.state", "FROZEN")
        result = both.run(which, config)
        assert result.returncode != 0 and result.stdout == "", which
        if which == "engine":
            assert "linux.cgroupsPath: the container's cgroup is frozen" in result.stderr
        cgfs.write("test", freezer, "freezer.state", "THAWED")


# ----- kill --all and delete --force ------------------------------------------------------------------------------

# Four shells forking as fast as they can (killing one, or the init, does not stop the others).
FORK_STORM = "for i in 1 2 3 4; do (while :; do sleep 30 & done) & done; wait"


def no_pid_namespace(config: dict[str, Any]) -> dict[str, Any]:
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"]
    # busybox sh exits when a fork fails: the limit is a safety net far above what the test waits for.
    config["linux"]["resources"] = {"pids": {"limit": 3000}}
    return config


@pytest.mark.skipif(HOST.v1_for("freezer") is None, reason="needs the v1 freezer")
def test_kill_all_leaves_no_process_of_a_forking_container(both: Both) -> None:
    """Without a pid namespace nothing but the cgroup holds the container together; a shell forking as fast as it
    can would have children that the signalling misses unless the cgroup is frozen first (freeze, signal through
    pidfds, thaw)."""
    config = no_pid_namespace(both.config(["sh", "-c", FORK_STORM]))
    cid = both.start("engine", config)
    pids = both.dirs(config)[hierarchy_with("pids")]
    assert wait_for(lambda: len(cgfs.pids_in(pids)) > 100)
    both("engine", "kill", "--all", cid, "KILL", check=True)
    assert wait_for(lambda: cgfs.pids_in(pids) == [], timeout=5), cgfs.pids_in(pids)
    assert cgfs.read(both.dirs(config)[hierarchy_with("freezer")], "freezer.state").strip() == "THAWED"
    both("engine", "delete", cid, check=True)


@pytest.mark.skipif(HOST.v1_for("freezer") is None, reason="needs the v1 freezer")
def test_kill_all_keeps_a_paused_container_paused(both: Both) -> None:
    """engine signals a paused container's processes while they stay frozen (they get the signal on resume); runc
    1.1.5 thaws the container on the way out. SIGKILL thaws under both (v1 needs it for the processes to die)."""
    for which in RUNTIMES:
        config = both.config(["sleep", "60"])
        cid = both.start(which, config)
        freezer = both.dirs(config)[hierarchy_with("freezer")]
        both(which, "pause", cid, check=True)
        both(which, "kill", "--all", cid, "TERM", check=True)
        expected = "FROZEN" if which == "engine" else "THAWED"
        assert cgfs.read(freezer, "freezer.state").strip() == expected, which
        assert json.loads(both(which, "state", cid).stdout)["status"] == ("paused" if which == "engine" else "running")
        both(which, "kill", "--all", cid, "KILL", check=True)
        assert wait_for(lambda freezer=freezer: cgfs.pids_in(freezer) == [], timeout=5), which
        assert cgfs.read(freezer, "freezer.state").strip() == "THAWED"
        both(which, "delete", "--force", cid, check=True)


@pytest.mark.parametrize("custom_path", [False, True], ids=["default-path", "cgroupsPath"])
def test_delete_force_with_a_corrupt_state_json(both: Both, custom_path: bool) -> None:
    """runc fails to delete a container whose state.json is garbage, and leaves it running. engine kills what the
    container's cgroups hold (found by the cgroupsPath of the config saved at create, or the default engine/<id>)
    and removes them and the state directory."""
    config = both.config(["sleep", "60"])
    if not custom_path:
        del config["linux"]["cgroupsPath"]
    cid = both.start("engine", config)
    init = both.pid("engine", cid)
    pid_file = both.tmp / "exec.pid"
    both("engine", "exec", "--detach", "--pid-file", str(pid_file), cid, "sleep", "60", check=True)
    execd = int(pid_file.read_text())
    state = both.engine.root / cid / "state.json"
    dirs = list(json.loads(state.read_text())["cgroups"]["dirs"].values())
    assert all(os.path.isdir(d) for d in dirs) and len(dirs) == len(HOST.v1) + (HOST.unified is not None)
    state.write_text("this is not JSON")
    plain = both("engine", "delete", cid)
    assert plain.returncode == 1 and "corrupt state.json" in plain.stderr and "delete --force" in plain.stderr
    forced = both("engine", "delete", "--force", cid)
    assert forced.returncode == 0, forced.stderr
    assert "killing what the container's cgroups hold" in forced.stderr
    assert not (both.engine.root / cid).exists()
    for pid in (init, execd):
        assert wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists() or _zombie(pid), timeout=5), pid
    assert [d for d in dirs if os.path.exists(d)] == []

    if custom_path:
        return
    runc_config = both.config(["sleep", "60"])
    runc_id = both.start("runc", runc_config)
    runc_init = both.pid("runc", runc_id)
    (both.runc_root / runc_id / "state.json").write_text("this is not JSON")
    failed = both("runc", "delete", "--force", runc_id)
    assert failed.returncode != 0 and Path(f"/proc/{runc_init}").exists()  # runc gives up and leaves it running
    os.kill(runc_init, signal.SIGKILL)  # (the fixture removes its cgroups)
    both.runc_ids.remove(runc_id)
    shutil.rmtree(both.runc_root / runc_id)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
