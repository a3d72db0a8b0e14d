"""The init's import rule (engine/process_setup.py): after pivot_root (or the chroot in the host's mount namespace)
and after exec's setns(mnt), the engine's files are out of sight, so nothing may be imported there that is not
loaded already. Comments cannot guard that; this does: engine runs under tests/integration/late_imports_probe.py,
which reports every module a container process tries to load after that point, and every module that appeared
in sys.modules between that point and the last execve.

Each scenario takes as many of the init's and exec's late paths as one container can: a terminal, a seccomp filter
with a notify listener, a startContainer hook, a user, capabilities, rlimits, no_new_privs, sysctls, a read-only
root, --no-pivot.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Engine

PROBE = Path(__file__).with_name("late_imports_probe.py")  # run, never imported here: importing it would not arm it


class NotifyListener:
    """A seccomp agent that takes each notify fd and keeps it (the filter's rule is for a syscall nobody makes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fds: list[int] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.server.bind(str(path))
        self.server.listen(4)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                _, fds, _, _ = socket.recv_fds(conn, 1 << 16, 1)
                self.fds.extend(fds)

    def close(self) -> None:
        self.server.close()
        for fd in self.fds:
            os.close(fd)


def probed(engine: Engine, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """`engine --root R args...` under the probe (pass --preserve-fds 1): (the result, the lines of its report)."""
    with tempfile.TemporaryFile() as report, tempfile.TemporaryFile("w+") as out:
        result = subprocess.run(
            [sys.executable, str(PROBE), "--root", str(engine.root), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=(report.fileno(),),
            env={**os.environ, "LATE_IMPORTS_REPORT_FD": str(report.fileno())},
            timeout=60,
        )
        report.seek(0)
        lines = report.read().decode().splitlines()
        out.seek(0)
        result.stdout = out.read()
    return result, lines


def assert_no_late_import(lines: list[str], armed_after: str, executed: str) -> None:
    late = [line for line in lines if "late import" in line or ("loaded since armed" in line and "none" not in line)]
    assert not late, "\n".join(lines)
    assert any(f"armed after {armed_after}" in line for line in lines), f"the probe never armed: {lines}"
    assert any(f"execve {executed}" in line and "loaded since armed: none" in line for line in lines), lines


def everything(config: dict[str, Any], listener: NotifyListener) -> None:
    process = config["process"]
    process["terminal"] = True
    process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10]}
    process["noNewPrivileges"] = True
    process["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 512}]
    process["capabilities"] = {key: ["CAP_CHOWN", "CAP_KILL"] for key in ("bounding", "effective", "permitted")}
    process["oomScoreAdj"] = 100
    config["hostname"] = "probed"
    config["hooks"] = {"startContainer": [{"path": "/bin/true"}]}
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "0"}
    config["linux"]["personality"] = {"domain": "LINUX"}
    config["linux"]["seccomp"] = notifying_filter(listener)


def notifying_filter(listener: NotifyListener) -> dict[str, Any]:
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": str(listener.path),
        "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_NOTIFY"}],
    }


@pytest.mark.parametrize("scenario", ["plain", "everything", "no-pivot"])
def test_the_init_imports_nothing_after_pivot_root(engine: Engine, tmp_path: Path, scenario: str) -> None:
    listener = NotifyListener(tmp_path / "agent.sock")
    try:
        bundle = engine.bundle(["sh", "-c", "echo ran"])
        config = json.loads((bundle / "config.json").read_text())
        if scenario == "everything":
            everything(config, listener)
        (bundle / "config.json").write_text(json.dumps(config))
        flags = ["--no-pivot"] if scenario == "no-pivot" else []
        container_id = engine.new_id()
        result, lines = probed(engine, "run", "--preserve-fds", "1", *flags, "--bundle", str(bundle), container_id)
        assert result.returncode == 0 and "ran" in result.stdout, result.stdout
        assert_no_late_import(lines, "pivot_into", "sh")
        if scenario == "everything":
            assert listener.fds, "the seccomp notify path was not taken"
    finally:
        listener.close()


@pytest.mark.parametrize("tty", [False, True], ids=["plain", "tty"])
def test_execs_process_imports_nothing_after_joining_the_mount_namespace(
    engine: Engine, tmp_path: Path, tty: bool
) -> None:
    listener = NotifyListener(tmp_path / "agent.sock")
    try:
        bundle = engine.bundle(["sleep", "600"])
        config = json.loads((bundle / "config.json").read_text())
        config["linux"]["seccomp"] = notifying_filter(listener)
        (bundle / "config.json").write_text(json.dumps(config))
        container_id = engine.new_id()
        engine("run", "--detach", "--bundle", str(bundle), container_id, check=True)
        flags = ["--tty"] if tty else []
        result, lines = probed(
            engine, "exec", "--preserve-fds", "1", *flags, "--user", "1000:1000", container_id, "sh", "-c", "echo ran"
        )
        assert result.returncode == 0 and "ran" in result.stdout, result.stdout
        assert_no_late_import(lines, "join_namespaces", "sh")
        assert len(listener.fds) == 2, "the seccomp notify path was not taken by exec"
    finally:
        listener.close()
