"""`engine start` releasing an init that already became the container's process (engine/init.py's
_exec_a_trampoline_that_waits, engine/linux/trampoline.py), and the configs that keep the Python init waiting:
what the host sees of the waiting init, what the program sees once started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from engine.spec.default import default_mounts
from tests.integration.conftest import ENGINE, Engine
from tests.integration.test_import_budget import modules_of
from tests.integration.test_lifecycle import marker_bundle, wait_for

IDS = "grep -E '^(Uid|Gid|Groups|NoNewPrivs|CapEff|CapBnd|SigBlk|SigIgn):' /proc/self/status > /mnt/ids"


def _waits_as_the_trampoline(pid: int) -> bool:
    """create returns once the init is set up; it execs the trampoline right after, which then blocks in openat
    (system call 257) on the fifo."""

    def waiting() -> bool:
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            return exe.startswith("/memfd:engine-exec") and Path(f"/proc/{pid}/syscall").read_text().split()[0] == "257"
        except (OSError, IndexError):
            return False

    return wait_for(waiting)


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def _user_bundle(engine: Engine, tmp_path: Path, script: str, **config: object) -> tuple[Path, Path]:
    bundle, shared = marker_bundle(engine, tmp_path, script)
    path = bundle / "config.json"
    spec = json.loads(path.read_text())
    spec["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [1001]}
    spec["process"]["noNewPrivileges"] = True
    spec.update(config)
    path.write_text(json.dumps(spec))
    os.chmod(shared, 0o777)
    return bundle, shared


def test_the_created_init_waits_as_the_trampoline_already_the_user(engine: Engine, tmp_path: Path) -> None:
    """Before `start` the init is the sealed trampoline, with the user's ids, groups, capabilities and
    no_new_privs, but an effective gid of its own (so the kernel made it non-dumpable); once started, the program
    has the user's gid everywhere, nothing blocked or ignored, and the same capabilities."""
    bundle, shared = _user_bundle(engine, tmp_path, f"{IDS}; exec sleep 60")
    cid = engine.new_id()
    engine("create", "--bundle", str(bundle), cid, check=True)
    pid = engine.state(cid)["pid"]
    assert _waits_as_the_trampoline(pid), os.readlink(f"/proc/{pid}/exe")
    waiting = _status(pid)
    assert waiting["Uid"].split() == ["1000"] * 4
    assert waiting["Gid"].split() == ["1000", "65534", "65534", "65534"]
    assert waiting["Groups"].split() == ["1001"] and waiting["NoNewPrivs"] == "1"
    assert os.stat(f"/proc/{pid}/fd").st_uid == 0  # non-dumpable: its /proc files belong to root
    engine("start", cid, check=True)
    assert wait_for(lambda: (shared / "ids").exists() and (shared / "ids").read_text().count("\n") == 8)
    started = dict(line.split(":", 1) for line in (shared / "ids").read_text().splitlines())
    assert started["Gid"].split() == ["1000"] * 4 and started["Uid"].split() == ["1000"] * 4
    assert started["Groups"].split() == ["1001"] and started["NoNewPrivs"].strip() == "1"
    assert started["CapEff"].strip() == waiting["CapEff"] and started["CapBnd"].strip() == waiting["CapBnd"]
    assert int(started["SigBlk"], 16) == 0 and int(started["SigIgn"], 16) == 0


def _with_start_hook(spec: dict) -> None:
    spec["hooks"] = {"startContainer": [{"path": "/bin/true"}]}


def _with_seccomp(spec: dict) -> None:
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}


@pytest.mark.parametrize("needs", [_with_start_hook, _with_seccomp], ids=["startContainer hook", "seccomp"])
def test_the_python_init_still_waits_where_the_config_needs_it(engine: Engine, tmp_path: Path, needs) -> None:
    """A startContainer hook (run as the process, after start) or a seccomp filter keeps the wait in the Python
    init, as root until released; the program ends up the same."""
    bundle, shared = _user_bundle(engine, tmp_path, f"{IDS}; exec sleep 60")
    path = bundle / "config.json"
    spec = json.loads(path.read_text())
    needs(spec)
    path.write_text(json.dumps(spec))
    cid = engine.new_id()
    engine("create", "--bundle", str(bundle), cid, check=True)
    pid = engine.state(cid)["pid"]
    assert "memfd" not in os.readlink(f"/proc/{pid}/exe")
    assert _status(pid)["Uid"].split() == ["0"] * 4
    engine("start", cid, check=True)
    assert wait_for(lambda: (shared / "ids").exists() and (shared / "ids").read_text().count("\n") == 8)
    started = dict(line.split(":", 1) for line in (shared / "ids").read_text().splitlines())
    assert started["Gid"].split() == ["1000"] * 4 and started["Uid"].split() == ["1000"] * 4


@pytest.mark.parametrize("sig", ["TERM", "INT", "HUP", "QUIT", "USR1", "USR2"])
def test_a_terminating_signal_stops_the_waiting_trampoline(engine: Engine, sig: str) -> None:
    """pid 1 of a pid namespace drops a signal left at its default action: the waiting trampoline handles the
    ones the Python init handled, and exits with the status a default-action death would give."""
    cid = engine.new_id()
    engine("create", "--bundle", str(engine.bundle(["sleep", "60"])), cid, check=True)
    pid = engine.state(cid)["pid"]
    assert _waits_as_the_trampoline(pid), os.readlink(f"/proc/{pid}/exe")
    engine("kill", cid, sig, check=True)
    assert wait_for(lambda: engine.state(cid)["status"] == "stopped"), f"SIG{sig} left the created init waiting"
    started = engine("start", cid)
    assert started.returncode != 0


def test_the_program_starts_with_stdio_only(engine: Engine, tmp_path: Path) -> None:
    """The trampoline's procfs fd and the fifo (O_PATH, then the write end) are all closed by the program's
    execve: the shell sees its three stdio fds and nothing else (fd 3 is ls's own directory)."""
    bundle, shared = marker_bundle(engine, tmp_path, "ls /proc/self/fd > /mnt/fds")
    cid = engine.new_id()
    engine("create", "--bundle", str(bundle), cid, check=True)
    engine("start", cid, check=True)
    assert wait_for(lambda: (shared / "fds").exists() and (shared / "fds").read_text().strip())
    assert (shared / "fds").read_text().split() == ["0", "1", "2", "3"]


def test_a_failure_while_becoming_the_process_is_reported_by_start(engine: Engine) -> None:
    """What fails once create has returned (here a CPU the kernel cannot run the process on) fails `start`
    with its message, as it did when the init became the process after the wait."""
    cid = engine.new_id()
    process_edit = {"execCPUAffinity": {"initial": f"{os.cpu_count() + 7}"}}
    bundle = engine.bundle(["sleep", "60"], mounts=default_mounts())
    path = bundle / "config.json"
    spec = json.loads(path.read_text())
    spec["process"].update(process_edit)
    path.write_text(json.dumps(spec))
    created = engine("create", "--bundle", str(bundle), cid)
    if created.returncode != 0:
        pytest.skip(f"create refuses the CPU itself here: {created.stderr.strip()}")
    started = engine("start", cid)
    assert started.returncode != 0
    assert "execCPUAffinity" in started.stderr or "affinity" in started.stderr.lower(), started.stderr
    assert wait_for(lambda: engine.state(cid)["status"] == "stopped")


def test_the_fifo_is_writable_by_the_container_user_only_through_the_state_directory(engine: Engine) -> None:
    """runc's 0622: the init opens it after becoming the user; the state directory (0700, root's) is what keeps
    everyone else from it."""
    cid = engine.new_id()
    engine("create", "--bundle", str(engine.bundle(["sleep", "60"])), cid, check=True)
    fifo = engine.root / cid / "exec.fifo"
    assert oct(os.stat(fifo).st_mode & 0o777) == "0o622"
    assert os.stat(engine.root / cid).st_mode & 0o077 == 0
    os.kill(engine.state(cid)["pid"], signal.SIGKILL)


def test_start_of_a_waiting_trampoline_loads_neither_select_nor_the_monitor(engine: Engine, tmp_path: Path) -> None:
    """Once the init waits (as the trampoline, counted as the fifo's writer), start reads until the exec with a
    plain blocking read: select is only for an init that has not opened its end yet; the monitor's lock is
    probed without loading the monitor."""
    cid = engine.new_id()
    engine("create", "--bundle", str(engine.bundle(["sleep", "60"])), cid, check=True)
    pid = engine.state(cid)["pid"]
    assert _waits_as_the_trampoline(pid), os.readlink(f"/proc/{pid}/exe")
    code, modules, errors = modules_of(tmp_path, "--root", str(engine.root), "start", cid)
    assert code == 0, errors
    assert engine.state(cid)["status"] == "running"
    assert not {"select", "state.monitor"} & modules, sorted({"select", "state.monitor"} & modules)


def test_start_reads_the_inits_stat_once(engine: Engine, tmp_path: Path) -> None:
    """start opens its pidfd on the init before it checks the init is alive and is ours (/proc/<pid>/stat): one
    read of the file, once the pidfd pins the process, answers both (engine/start.py). And state.json is looked up
    once before start releases the init, by its read (no stat of it under the lock first: state/store.py)."""
    cid = engine.new_id()
    engine("create", "--bundle", str(engine.bundle(["sleep", "60"])), cid, check=True)
    pid = engine.state(cid)["pid"]
    trace = tmp_path / "start.strace"
    strace = ["strace", "-qq", "-e", "trace=openat,newfstatat", "-o", str(trace)]
    subprocess.run([*strace, ENGINE, "--root", str(engine.root), "start", cid], check=True, timeout=60)
    assert engine.state(cid)["status"] == "running"
    opens = [line for line in trace.read_text().splitlines() if f'"/proc/{pid}/stat"' in line]
    assert len(opens) == 1, opens
    lookups = [line for line in trace.read_text().splitlines() if '"state.json"' in line]
    assert len(lookups) == 1 and lookups[0].startswith("openat("), lookups
