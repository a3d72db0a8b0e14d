"""OCI hooks at the points and in the namespaces config.md names, with engine's real lifecycle.

config.md: prestart/createRuntime/poststart/poststop run in the runtime namespace; createContainer and
startContainer in the container namespace; poststart "after the user-specified process is executed but before
the start operation returns"; poststop after the container is destroyed. Failures: a failing prestart,
createRuntime, createContainer or startContainer hook fails the operation and tears the container down; a
failing poststart or poststop hook is a warning.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.spec.default import default_mounts
from tests.integration.conftest import Engine, leftover_processes
from tests.integration.test_lifecycle import wait_for

REPO = Path(__file__).resolve().parents[2]
STAGES = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]


def recorder(stage: str, log: str) -> dict[str, Any]:
    """A hook (busybox-free: /bin/sh exists on the host and in the rootfs) that appends one line:
    stage, its mount and net namespaces, and the state it got on stdin."""
    script = (
        f'printf "%s %s %s %s\\n" {stage} $(readlink /proc/self/ns/mnt) $(readlink /proc/self/ns/net) '
        f'"$(cat | tr -d " \\n")" >> {log}'
    )
    return {"path": "/bin/sh", "args": ["sh", "-c", script]}


def failing(stage: str) -> dict[str, Any]:
    return {"path": "/bin/sh", "args": ["sh", "-c", f"echo {stage}-went-wrong >&2; exit 3"]}


def hooked_bundle(engine: Engine, tmp_path: Path, hooks: dict[str, list[dict]], args: list[str]) -> tuple[Path, Path]:
    shared = tmp_path / "shared"
    shared.mkdir(exist_ok=True)
    mounts = [*default_mounts(), {"destination": "/mnt", "type": "bind", "source": str(shared), "options": ["rbind"]}]
    return engine.bundle(args, mounts=mounts, hooks=hooks), shared


def read_log_lines(lines: list[str]) -> list[tuple[str, str, str, dict]]:
    rows = []
    for line in lines:
        stage, mnt, net, state = line.split(" ", 3)
        rows.append((stage, mnt, net, json.loads(state)))
    return rows


def read_log(path: Path) -> list[tuple[str, str, str, dict]]:
    return read_log_lines(path.read_text().splitlines())


def test_all_six_stages_in_order_and_in_the_right_namespaces(engine: Engine, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    host_log = str(shared / "hooks.log")
    # startContainer runs in the container, after pivot_root: it sees the shared directory at /mnt.
    hooks = {stage: [recorder(stage, "/mnt/hooks.log" if stage == "startContainer" else host_log)] for stage in STAGES}
    bundle, shared = hooked_bundle(engine, tmp_path, hooks, ["sh", "-c", "echo ran >> /mnt/hooks.log; sleep 60"])
    cid = engine.new_id()
    engine("create", "--bundle", str(bundle), cid, check=True)
    init_pid = engine.state(cid)["pid"]
    container_mnt = os.readlink(f"/proc/{init_pid}/ns/mnt")
    container_net = os.readlink(f"/proc/{init_pid}/ns/net")
    assert [row[0] for row in read_log(shared / "hooks.log")] == ["prestart", "createRuntime", "createContainer"]
    engine("start", cid, check=True)
    # config.md: poststart "MUST be called after the user-specified process is executed but before the start
    # operation returns": read at once, no waiting, the log has it (and its state says the process runs).
    at_return = read_log_lines([line for line in (shared / "hooks.log").read_text().splitlines() if line != "ran"])
    assert [row[0] for row in at_return] == STAGES[:5], at_return
    assert at_return[-1][3]["status"] == "running" and at_return[-1][3]["pid"] == init_pid
    assert wait_for(lambda: "ran" in (shared / "hooks.log").read_text())
    engine("kill", cid, "KILL", check=True)
    assert wait_for(lambda: engine.state(cid)["status"] == "stopped")
    engine("delete", cid, check=True)
    lines = (shared / "hooks.log").read_text().splitlines()
    rows = read_log_lines([line for line in lines if line != "ran"])
    assert [r[0] for r in rows] == STAGES
    # poststart ran once start had executed the program, which then wrote "ran" (concurrently with poststart,
    # so only their order relative to startContainer is fixed).
    assert lines.index("ran") > [r[0] for r in read_log_lines(lines[: lines.index("ran")])].index("startContainer")
    host_mnt, host_net = os.readlink("/proc/self/ns/mnt"), os.readlink("/proc/self/ns/net")
    for stage, mnt, net, state in rows:
        if stage in ("createContainer", "startContainer"):
            assert (mnt, net) == (container_mnt, container_net), stage
        else:
            assert (mnt, net) == (host_mnt, host_net), stage
        assert state["id"] == cid and state["ociVersion"] and state["bundle"] == str(bundle)
    by_stage = {r[0]: r[3] for r in rows}
    assert by_stage["prestart"]["pid"] == init_pid and by_stage["createRuntime"]["pid"] == init_pid
    assert by_stage["startContainer"]["pid"] == 1  # the pid as seen in the container's pid namespace
    assert by_stage["poststart"]["status"] == "running"
    assert by_stage["poststop"]["status"] == "stopped"


@pytest.mark.parametrize("stage", ["prestart", "createRuntime", "createContainer"])
def test_a_failing_create_hook_fails_create_and_runs_poststop(engine: Engine, tmp_path: Path, stage: str) -> None:
    log = str(tmp_path / "shared" / "poststop.log")
    hooks = {stage: [failing(stage)], "poststop": [recorder("poststop", log)]}
    bundle, _ = hooked_bundle(engine, tmp_path, hooks, ["sleep", "60"])
    cid = engine.new_id()
    result = engine("create", "--bundle", str(bundle), cid)
    assert result.returncode != 0
    assert f"{stage}-went-wrong" in result.stderr and stage in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (engine.root / cid).exists()
    assert leftover_processes([cid]) == []
    # runtime.md: "... stop the container, and continue the lifecycle at step 12" (12: destroy, 13: poststop).
    assert [r[0] for r in read_log(Path(log))] == ["poststop"]


def test_a_failing_start_container_hook_fails_start(engine: Engine, tmp_path: Path) -> None:
    bundle, shared = hooked_bundle(
        engine, tmp_path, {"startContainer": [failing("startContainer")]}, ["sh", "-c", "echo ran > /mnt/ran"]
    )
    cid = engine.new_id()
    engine("create", "--bundle", str(bundle), cid, check=True)
    result = engine("start", cid)
    assert result.returncode != 0 and "startContainer-went-wrong" in result.stderr
    assert engine.state(cid)["status"] == "stopped"
    assert not (shared / "ran").exists()


@pytest.mark.parametrize("stage", ["poststart", "poststop"])
def test_failing_poststart_and_poststop_hooks_are_warnings(engine: Engine, tmp_path: Path, stage: str) -> None:
    log = str(tmp_path / "shared" / "after.log")
    hooks = {stage: [failing(stage), recorder(stage, log)]}
    bundle, _ = hooked_bundle(engine, tmp_path, hooks, ["sleep", "60"])
    cid = engine.new_id()
    engine("create", "--bundle", str(bundle), cid, check=True)
    started = engine("start", cid)
    assert started.returncode == 0
    engine("kill", cid, "KILL", check=True)
    assert wait_for(lambda: engine.state(cid)["status"] == "stopped")
    deleted = engine("delete", cid)
    assert deleted.returncode == 0
    warned = started.stderr if stage == "poststart" else deleted.stderr
    assert "warning" in warned and f"{stage}-went-wrong" in warned
    # "the remaining hooks and lifecycle continue as if the hook had succeeded"
    assert [r[0] for r in read_log(Path(log))] == [stage]


def test_hooks_dir_drop_ins_are_merged_after_the_configs_hooks(engine: Engine, tmp_path: Path) -> None:
    log = str(tmp_path / "shared" / "order.log")
    hooks_dir = tmp_path / "hooks.d"
    hooks_dir.mkdir()
    for name, tag in (("10-always.json", "dropin-always"), ("20-never.json", "dropin-never")):
        when = {"always": True} if "always" in name else {"annotations": {"^no-such-key$": ".*"}}
        (hooks_dir / name).write_text(
            json.dumps({"version": "1.0.0", "hook": recorder(tag, log), "when": when, "stages": ["prestart"]})
        )
    bundle, _ = hooked_bundle(engine, tmp_path, {"prestart": [recorder("config", log)]}, ["true"])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "--root",
            str(engine.root),
            "--hooks-dir",
            str(hooks_dir),
            "run",
            "--bundle",
            str(bundle),
            engine.new_id(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert [r[0] for r in read_log(Path(log))] == ["config", "dropin-always"]


def test_the_shipped_network_hook_gives_a_container_a_link(engine: Engine, tmp_path: Path) -> None:
    """hooks/network.py as a createRuntime hook, torn down as poststop; traffic stays inside the test's own
    veth pair between the host's network namespace and the container's."""
    env = [f"PYTHONPATH={REPO}", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    python = [sys.executable, "-m", "hooks.network"]
    name = f"ve-t{os.getpid() % 100000}"
    hooks = {
        "createRuntime": [
            {
                "path": sys.executable,
                "args": [*python, "--name", name, "--host-addr", "10.231.7.1/30", "--container-addr", "10.231.7.2/30"],
                "env": env,
            }
        ],
        "poststop": [{"path": sys.executable, "args": [*python, "--teardown", "--name", name], "env": env}],
    }
    bundle, _ = hooked_bundle(
        engine,
        tmp_path,
        hooks,
        ["sh", "-c", "ip -o -4 addr show dev eth0; ping -c1 -W2 10.231.7.1 >/dev/null && echo reached"],
    )
    config = json.loads((bundle / "config.json").read_text())
    caps = config["process"]["capabilities"]
    for key in ("bounding", "effective", "permitted"):
        caps[key].append("CAP_NET_RAW")  # busybox ping opens a raw socket
    (bundle / "config.json").write_text(json.dumps(config))
    out = engine("run", "--bundle", str(bundle), engine.new_id(), check=True).stdout
    assert "10.231.7.2/30" in out and "reached" in out
    assert subprocess.run(["ip", "link", "show", name], capture_output=True).returncode != 0  # torn down
