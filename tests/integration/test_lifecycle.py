"""The runc-compatible lifecycle, for real: create, start, state, kill, delete, run (runtime.md "Operations")."""

from __future__ import annotations

import concurrent.futures
import ctypes
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT4

from tests.integration.conftest import ENGINE, Engine


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def state_validator(spec_dir: Path) -> jsonschema.Validator:
    schema_dir = spec_dir / "schema"
    resources = [
        (name, DRAFT4.create_resource(json.loads((schema_dir / name).read_text())))
        for name in ("defs.json", "state-schema.json")
    ]
    registry = Registry().with_resources(resources)
    schema = json.loads((schema_dir / "state-schema.json").read_text())
    return jsonschema.Draft4Validator(schema, registry=registry)


def marker_bundle(engine: Engine, tmp_path: Path, script: str) -> tuple[Path, Path]:
    """A bundle whose program runs `script` with the host dir `shared` mounted at /mnt (which the read-only
    test rootfs already has: mount points missing from it would be created in the shared rootfs)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    config_mounts = json.loads(json.dumps(__import__("engine.spec.default", fromlist=["x"]).default_mounts()))
    config_mounts.append({"destination": "/mnt", "type": "bind", "source": str(shared), "options": ["rbind"]})
    bundle = engine.bundle(["sh", "-c", script], mounts=config_mounts)
    return bundle, shared


def test_create_does_not_run_the_program_until_start(engine: Engine, tmp_path: Path, spec_dir: Path) -> None:
    # runtime.md Create: "process.args MUST NOT be applied until triggered by the start operation."
    bundle, shared = marker_bundle(engine, tmp_path, "echo started > /mnt/marker; exec sleep 60")
    cid = engine.new_id()
    engine("create", "--bundle", str(bundle), cid, check=True)
    state = engine.state(cid)
    assert state["status"] == "created"
    assert state["id"] == cid and state["bundle"] == str(bundle)
    state_validator(spec_dir).validate(state)
    assert os.path.exists(f"/proc/{state['pid']}")
    time.sleep(0.2)
    assert not (shared / "marker").exists()

    engine("start", cid, check=True)
    assert wait_for(lambda: (shared / "marker").exists())
    state = engine.state(cid)
    assert state["status"] == "running"
    state_validator(spec_dir).validate(state)
    # runtime.md Start: "Attempting to start a container that is not created MUST have no effect ... and MUST
    # generate an error."
    again = engine("start", cid)
    assert again.returncode != 0 and "not created" in again.stderr
    assert engine.state(cid)["status"] == "running"


def test_state_reports_stopped_once_the_program_exits(engine: Engine) -> None:
    cid = engine.new_id()
    engine("create", "--bundle", str(engine.bundle(["true"])), cid, check=True)
    engine("start", cid, check=True)
    assert wait_for(lambda: engine.state(cid)["status"] == "stopped")
    assert engine.state(cid)["pid"] == 0
    engine("delete", cid, check=True)
    assert engine("state", cid).returncode != 0


def test_pid_file_and_init_parent(engine: Engine, tmp_path: Path) -> None:
    """After create exits, the init is nobody's child but the subreaper's (here: this test process)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_child_subreaper = 36
    cid = engine.new_id()
    pid_file = tmp_path / "init.pid"
    bundle = engine.bundle(["sleep", "60"])

    def become_subreaper() -> None:
        libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0)

    # Run create from a child that is a subreaper, so the init must re-parent to that child, not to engine.
    reaper = subprocess.Popen(
        [
            "python3",
            "-c",
            "import ctypes,sys,subprocess,time; ctypes.CDLL(None).prctl(36,1,0,0,0);"
            f"sys.exit(subprocess.call([{ENGINE!r}, '--root', {str(engine.root)!r}, 'create', '--bundle',"
            f" {str(bundle)!r}, '--pid-file', {str(pid_file)!r}, {cid!r}]) or time.sleep(30))",
        ],
    )
    try:
        assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "", 10)
        pid = int(pid_file.read_text())
        assert engine.state(cid)["pid"] == pid
        stat = Path(f"/proc/{pid}/stat").read_text()
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        assert ppid == reaper.pid
    finally:
        reaper.kill()
        reaper.wait()
    del become_subreaper


def test_kill_signals(engine: Engine, tmp_path: Path) -> None:
    script = "trap 'echo got-usr1 > /mnt/sig' USR1; trap 'exit 42' TERM; while true; do sleep 0.05; done"
    bundle, shared = marker_bundle(engine, tmp_path, script)
    cid = engine.new_id()
    engine("create", "--bundle", str(bundle), cid, check=True)
    engine("start", cid, check=True)
    time.sleep(0.2)
    engine("kill", cid, "USR1", check=True)
    assert wait_for(lambda: (shared / "sig").exists())
    bad = engine("kill", cid, "NOSUCHSIG")
    assert bad.returncode != 0 and "NOSUCHSIG" in bad.stderr
    engine("kill", cid, check=True)  # SIGTERM by default
    assert wait_for(lambda: engine.state(cid)["status"] == "stopped")
    # runtime.md Kill: "Attempting to send a signal to a container that is neither created nor running MUST have
    # no effect on the container and MUST generate an error."
    late = engine("kill", cid, "9")
    assert late.returncode != 0 and "stopped" in late.stderr


@pytest.mark.parametrize("sig", ["KILL", "SIGKILL", "9"])
def test_kill_a_created_container(engine: Engine, sig: str) -> None:
    cid = engine.new_id()
    engine("create", "--bundle", str(engine.bundle(["sleep", "60"])), cid, check=True)
    engine("kill", cid, sig, check=True)
    assert wait_for(lambda: engine.state(cid)["status"] == "stopped")


def test_kill_all(engine: Engine) -> None:
    cid = engine.new_id()
    engine(
        "run", "--detach", "--bundle", str(engine.bundle(["sh", "-c", "sleep 60 & sleep 60 & wait"])), cid, check=True
    )
    pid = engine.state(cid)["pid"]
    assert wait_for(lambda: len(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()) == 2)
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    engine("kill", "--all", cid, "KILL", check=True)
    assert wait_for(lambda: engine.state(cid)["status"] == "stopped")
    assert wait_for(
        lambda: (
            not any(os.path.exists(f"/proc/{c}/cmdline") and Path(f"/proc/{c}/cmdline").read_bytes() for c in children)
        )
    )


def test_delete_refuses_a_running_container_unless_forced(engine: Engine) -> None:
    cid = engine.new_id()
    engine("run", "--detach", "--bundle", str(engine.bundle(["sleep", "60"])), cid, check=True)
    refused = engine("delete", cid)
    assert refused.returncode != 0 and "running" in refused.stderr
    assert engine.state(cid)["status"] == "running"
    pid = engine.state(cid)["pid"]
    engine("delete", "--force", cid, check=True)
    assert engine("state", cid).returncode != 0
    assert wait_for(lambda: not Path(f"/proc/{pid}/cmdline").exists() or not Path(f"/proc/{pid}/cmdline").read_bytes())


@pytest.mark.parametrize("command", [["state"], ["start"], ["kill"], ["delete"]])
def test_unknown_id_is_an_error(engine: Engine, command: list[str]) -> None:
    result = engine(*command, "no-such-container")
    assert result.returncode != 0
    assert result.stderr.strip() == "engine: container 'no-such-container' does not exist"


def test_force_delete_of_an_unknown_id_succeeds_and_clears_a_partial_directory(engine: Engine) -> None:
    """runc's behaviour, which containerd's shim relies on during cleanup."""
    assert engine("delete", "--force", "no-such-container").returncode == 0
    (engine.root / "half-made").mkdir(parents=True)  # a create killed between mkdir and its first state.json
    assert engine("delete", "--force", "half-made").returncode == 0
    assert not (engine.root / "half-made").exists()


@pytest.mark.parametrize("command", ["state", "start", "kill", "delete"])
def test_missing_id_is_an_error(engine: Engine, command: str) -> None:
    result = engine(command)
    assert result.returncode != 0 and "container-id" in result.stderr


@pytest.mark.parametrize("bad_id", ["", "..", "a/b", "x" * 1025, "sp ace"])
def test_invalid_ids_are_rejected(engine: Engine, bad_id: str) -> None:
    result = engine("create", "--bundle", str(engine.bundle(["true"])), bad_id)
    assert result.returncode != 0 and "container id" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_duplicate_id_is_rejected_atomically(engine: Engine) -> None:
    cid = engine.new_id()
    bundle = engine.bundle(["sleep", "60"])
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: engine("create", "--bundle", str(bundle), cid), range(16)))
    assert sorted(r.returncode for r in results).count(0) == 1
    failures = [r for r in results if r.returncode != 0]
    assert all("already exists" in r.stderr for r in failures), [r.stderr for r in failures]
    assert engine.state(cid)["status"] == "created"


def test_run_exit_status(engine: Engine) -> None:
    assert engine("run", "--bundle", str(engine.bundle(["sh", "-c", "exit 7"])), engine.new_id()).returncode == 7
    # Killed by signal n: 128 + n, like runc and shells.
    cid = engine.new_id()
    run = subprocess.Popen(
        [ENGINE, "--root", str(engine.root), "run", "--bundle", str(engine.bundle(["sleep", "60"])), cid],
        stdout=subprocess.DEVNULL,
    )
    assert wait_for(lambda: engine("state", cid).returncode == 0 and engine.state(cid)["status"] == "running")
    engine("kill", cid, "KILL", check=True)
    assert run.wait(10) == 128 + signal.SIGKILL
    out = engine("run", "--bundle", str(engine.bundle(["echo", "hello"])), engine.new_id())
    assert out.returncode == 0 and out.stdout == "hello\n"


def test_container_sees_its_own_namespaces(engine: Engine) -> None:
    script = "echo pid=$$; hostname; for n in net mnt ipc uts; do readlink /proc/self/ns/$n; done"
    out = engine("run", "--bundle", str(engine.bundle(["sh", "-c", script])), engine.new_id(), check=True).stdout
    lines = out.split()
    assert lines[0] == "pid=1"
    assert lines[1] == "engine"
    for ns, line in zip(["net", "mnt", "ipc", "uts"], lines[2:], strict=True):
        assert line != os.readlink(f"/proc/self/ns/{ns}"), f"{ns} namespace shared with the host"


def test_process_user_env_and_cwd(engine: Engine, tmp_path: Path) -> None:
    bundle = engine.bundle(["sh", "-c", "id -u; id -g; id -G; pwd; echo $FOO"])
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 7]}
    config["process"]["env"].append("FOO=bar baz")
    config["process"]["cwd"] = "/root"
    (bundle / "config.json").write_text(json.dumps(config))
    out = engine("run", "--bundle", str(bundle), engine.new_id(), check=True).stdout.split("\n")
    assert out[:5] == ["1000", "1001", "1001 5 7", "/root", "bar baz"]


def test_json_log(engine: Engine, tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    result = subprocess.run(
        [ENGINE, "--root", str(engine.root), "--log", str(log), "--log-format", "json", "state", "nope"],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "nope" in entry["msg"] and entry["time"].endswith("Z")


def test_list(engine: Engine) -> None:
    ids = sorted(engine.new_id() for _ in range(2))
    for cid in ids:
        engine("create", "--bundle", str(engine.bundle(["sleep", "60"])), cid, check=True)
    assert engine("list", "-q").stdout.split() == ids
    listed = json.loads(engine("list", "--format", "json").stdout)
    assert [s["id"] for s in listed] == ids and {s["status"] for s in listed} == {"created"}
    table = engine("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"] and len(table) == 3
