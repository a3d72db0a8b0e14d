"""A failing create reports one clear line, exits non-zero and leaves nothing behind (runtime.md "Errors":
"generating an error MUST leave the state of the environment as if the operation were never attempted")."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests import host
from tests.integration.conftest import Engine, leftover_mounts, leftover_processes


def edit(config: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for key in keys[:-1]:
        config = config.setdefault(key, {})
    config[keys[-1]] = value


CASES = [
    ("missing rootfs", "root.path", "/nonexistent/rootfs", "root.path"),
    ("missing program", "process.args", ["no-such-program"], "no-such-program"),
    ("cwd is a file", "process.cwd", "/bin/busybox", "process.cwd"),
    ("relative cwd", "process.cwd", "relative/dir", "process.cwd"),
    ("bad uid", "process.user.uid", 4294967295, "uid"),
    ("bad mount", "mounts", [{"destination": "/mnt", "type": "nosuchfs", "source": "none"}], "/mnt"),
    (
        "bad namespace path",
        "linux.namespaces",
        [{"type": "mount"}, {"type": "uts", "path": "/proc/self/ns/net"}],
        "uts",
    ),
    ("bad sysctl", "linux.sysctl", {"no.such.key": "1"}, "no.such.key"),
    ("bad memory limit", "linux.resources.memory", {"limit": "1g"}, "linux.resources.memory.limit"),
]


@pytest.mark.parametrize(("what", "path", "value", "expected"), CASES, ids=[c[0] for c in CASES])
def test_failed_create_leaves_nothing(
    engine: Engine, tmp_path: Path, what: str, path: str, value: Any, expected: str
) -> None:
    bundle = engine.bundle(["sleep", "60"])
    config = json.loads((bundle / "config.json").read_text())
    edit(config, path, value)
    (bundle / "config.json").write_text(json.dumps(config))
    cid = engine.new_id()
    result = engine("create", "--bundle", str(bundle), "--pid-file", str(tmp_path / "pid"), cid)
    assert result.returncode != 0, f"{what}: create succeeded"
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (engine.root / cid).exists()
    assert not (tmp_path / "pid").exists()
    assert engine("state", cid).returncode != 0
    assert leftover_mounts(tmp_path) == []
    assert leftover_processes([cid]) == []


def test_unwritable_pid_file(engine: Engine, tmp_path: Path) -> None:
    cid = engine.new_id()
    result = engine(
        "create", "--bundle", str(engine.bundle(["sleep", "60"])), "--pid-file", "/nonexistent-dir/pid", cid
    )
    assert result.returncode != 0 and "--pid-file" in result.stderr
    assert not (engine.root / cid).exists()
    assert leftover_processes([cid]) == []


def test_missing_config(engine: Engine, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = engine("create", "--bundle", str(empty), engine.new_id())
    assert result.returncode != 0 and "config.json" in result.stderr
    assert not any(os.scandir(engine.root)) if engine.root.exists() else True


def test_an_engine_killed_mid_create_is_cleaned_by_delete_force(engine: Engine, tmp_path: Path) -> None:
    """SIGKILL `engine create` while a createRuntime hook runs: the init notices and exits, `state` says
    stopped, and `delete --force` removes the state directory and the cgroups it had made."""
    import signal
    import subprocess
    import time

    from tests.integration.conftest import ENGINE

    started = tmp_path / "hook-started"
    bundle = engine.bundle(["sleep", "60"])
    config = json.loads((bundle / "config.json").read_text())
    config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {started}; sleep 30"]}]}
    (bundle / "config.json").write_text(json.dumps(config))
    cid = engine.new_id()
    create = subprocess.Popen(
        [ENGINE, "--root", str(engine.root), "create", "--bundle", str(bundle), cid],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not started.exists():
        assert time.monotonic() < deadline, "the hook never ran"
        time.sleep(0.05)
    state = json.loads((engine.root / cid / "state.json").read_text())
    assert state["status"] == "creating" and state["cgroups"]
    create.send_signal(signal.SIGKILL)
    create.wait()
    assert json.loads(engine("state", cid).stdout)["status"] == "stopped"
    engine("delete", "--force", cid, check=True)
    assert not (engine.root / cid).exists()
    assert not any(os.path.exists(d) for d in state["cgroups"]["dirs"].values())
    deadline = time.monotonic() + 10
    while leftover_processes([cid]):
        assert time.monotonic() < deadline, leftover_processes([cid])
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("linux.netDevices", {"eth9": {}}, "linux.netDevices: not supported"),
        ("linux.intelRdt", {"closID": "x"}, "linux.intelRdt: not supported"),
        pytest.param(
            "process.apparmorProfile",
            "some-profile",
            "AppArmor is not enabled",
            marks=pytest.mark.skipif(host.apparmor_enabled(), reason=f"{host.APPARMOR_ON}: a profile can apply"),
        ),
        (
            "mounts",
            [{"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}],
            "tmpcopyup",
        ),
        ("mounts", [{"destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]}], "idmap"),
    ],
)
def test_what_engine_cannot_apply_is_an_error(engine: Engine, path: str, value: Any, expected: str) -> None:
    """runtime.md Create: "If the runtime cannot apply a property as specified in the configuration, it MUST
    generate an error and a new container MUST NOT be created." """
    bundle = engine.bundle(["sleep", "60"])
    config = json.loads((bundle / "config.json").read_text())
    edit(config, path, value)
    (bundle / "config.json").write_text(json.dumps(config))
    cid = engine.new_id()
    result = engine("create", "--bundle", str(bundle), cid)
    assert result.returncode != 0 and expected in result.stderr, result.stderr
    assert not (engine.root / cid).exists()


def test_selinux_labels_are_a_warning_when_selinux_is_off(engine: Engine) -> None:
    if host.selinux_enabled():
        pytest.skip(f"{host.SELINUX_ON}: a label is applied, not warned about")
    bundle = engine.bundle(["true"])
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0"
    (bundle / "config.json").write_text(json.dumps(config))
    result = engine("run", "--bundle", str(bundle), engine.new_id())
    assert result.returncode == 0 and "warning" in result.stderr and "SELinux" in result.stderr
