"""containerd drives engine through its runc shim (containerd-shim-runc-v2 with --runc-binary), the path
Kubernetes takes: run, exit status, detached task, ps, kill.

The test starts its own containerd (private root, state and socket; the CRI plugin off) in a containerd
namespace of its own, and imports the busybox test rootfs as an image (built with podman, saved as a docker
archive): no registry, no network. The shim gives its runc binary --root /run/containerd/runc/<namespace>: a
running task's state.json there, in engine's own format with the pid ctr reports, proves that engine (not a
runc the shim could fall back to) runs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ENGINE = str(Path(sys.executable).with_name("engine"))
IMAGE = "localhost/engine-ctr-busybox:latest"
# Unique per run: the shim's state under /run/containerd/runc/<namespace> is shared by every containerd here.
NAMESPACE = f"engine-test-{uuid.uuid4().hex[:10]}"
SHIM_ROOT = Path("/run/containerd/runc") / NAMESPACE

pytestmark = pytest.mark.skipif(
    shutil.which("containerd") is None or shutil.which("podman") is None,
    reason="containerd and podman are not installed (.ci/run installs them)",
)


@pytest.fixture(scope="module")
def ctr(tmp_path_factory: pytest.TempPathFactory, rootfs: Path) -> Iterator[list[str]]:
    work = tmp_path_factory.mktemp("containerd")
    sock = work / "containerd.sock"
    (work / "config.toml").write_text(
        f'version = 2\nroot = "{work}/root"\nstate = "{work}/state"\n'
        f'[grpc]\n  address = "{sock}"\n[plugins."io.containerd.grpc.v1.cri"]\n  disable = true\n'
    )
    daemon = subprocess.Popen(
        ["containerd", "--config", str(work / "config.toml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = ["ctr", "--address", str(sock), "--namespace", NAMESPACE]
    podman: list[str] = []
    runroot = ""
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([*base, "version"], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "containerd did not start"
            time.sleep(0.2)
        # podman refuses a --runroot longer than 50 characters: pytest's tmp paths are longer.
        runroot = tempfile.mkdtemp(prefix="engine-ctr-")
        podman = ["podman", "--root", str(work / "podman"), "--runroot", runroot]
        archive = work / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
        subprocess.run([*podman, "import", str(archive), IMAGE], check=True, capture_output=True, timeout=120)
        subprocess.run(
            [*podman, "save", "--format", "docker-archive", "-o", str(work / "image.tar"), IMAGE],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [*base, "images", "import", str(work / "image.tar")], check=True, capture_output=True, timeout=120
        )
        yield base
    finally:
        daemon.terminate()
        daemon.wait(30)
        subprocess.run(["umount", "-R", str(work / "root")], capture_output=True)
        subprocess.run([*podman, "rmi", "--all", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(runroot, ignore_errors=True)
        # containerd puts a task's cgroup at /<namespace>/<id>. engine removes the parents it made; runc 1.1.5 leaves
        # /<namespace> in a hybrid host's cgroup2 hierarchy (seen when a planted fault hands the task to runc).
        for mount in Path("/proc/self/mounts").read_text().splitlines():
            fields = mount.split()
            if fields[2] in ("cgroup", "cgroup2"):
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(fields[1], NAMESPACE))
        # engine's --root for this namespace: nothing but its monitor's lock once every task is deleted
        if SHIM_ROOT.is_dir() and all(name.startswith(".") for name in os.listdir(SHIM_ROOT)):
            shutil.rmtree(SHIM_ROOT)


def ctr_run(ctr: list[str], name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*ctr, "run", "--rm", "--runc-binary", ENGINE, IMAGE, name, *args], capture_output=True, text=True, timeout=60
    )


def test_run_and_exit_status(ctr: list[str]) -> None:
    result = ctr_run(ctr, "engine-ctr-run", "sh", "-c", "echo hello; exit 5")
    assert result.stdout == "hello\n", result.stderr
    assert result.returncode == 5


def test_detached_task_ps_and_kill(ctr: list[str]) -> None:
    name = "engine-ctr-detached"
    subprocess.run(
        [*ctr, "run", "-d", "--runc-binary", ENGINE, IMAGE, name, "sleep", "100"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        tasks = subprocess.run([*ctr, "task", "ls"], capture_output=True, text=True, timeout=30).stdout
        assert any(line.split()[:1] == [name] and "RUNNING" in line for line in tasks.splitlines())
        pid = next(line.split()[1] for line in tasks.splitlines() if line.startswith(name))
        record = json.loads((SHIM_ROOT / name / "state.json").read_text())
        assert record["id"] == name and record["status"] == "running", record
        assert record["pid"] == int(pid) and {"creator_pid", "pid_start_time", "cgroups"} <= set(record), record
        ps = subprocess.run([*ctr, "task", "ps", name], capture_output=True, text=True, timeout=30).stdout
        assert pid in ps
        subprocess.run([*ctr, "task", "kill", "--signal", "KILL", name], check=True, capture_output=True, timeout=30)
        deadline = time.monotonic() + 10
        while "STOPPED" not in subprocess.run([*ctr, "task", "ls"], capture_output=True, text=True).stdout:
            assert time.monotonic() < deadline, "task did not stop"
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{pid}/cmdline") or not Path(f"/proc/{pid}/cmdline").read_bytes()
    finally:
        subprocess.run([*ctr, "task", "rm", "--force", name], capture_output=True, timeout=30)
        subprocess.run([*ctr, "containers", "rm", name], capture_output=True, timeout=30)
