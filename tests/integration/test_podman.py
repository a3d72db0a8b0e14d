"""podman drives engine through conmon: run, exit codes, detach + logs + stop (the way users meet a runtime).

The image is the busybox test rootfs imported with `podman import` (no registry). podman keeps its storage in
a private --root/--runroot so the host's podman state is never touched. conmon limits nproc and the hard
nofile is 20000 here: every run passes explicit --ulimit values.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ENGINE = str(Path(sys.executable).with_name("engine"))
IMAGE = "localhost/engine-test-busybox:latest"
RUN_FLAGS = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]

pytestmark = pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory, rootfs: Path) -> Iterator[list[str]]:
    work = tmp_path_factory.mktemp("podman")
    runroot = tempfile.mkdtemp(prefix="engine-podman-")  # podman refuses a --runroot over 50 characters
    base = [
        "podman",
        "--root",
        str(work / "storage"),
        "--runroot",
        runroot,
        "--runtime",
        ENGINE,
        "--log-level",
        "error",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
    ]
    archive = work / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(rootfs, arcname=".")
    subprocess.run([*base, "import", str(archive), IMAGE], check=True, capture_output=True, timeout=120)
    yield base
    subprocess.run([*base, "rm", "--all", "--force"], capture_output=True, timeout=120)
    subprocess.run([*base, "rmi", "--all", "--force"], capture_output=True, timeout=120)
    shutil.rmtree(runroot, ignore_errors=True)


def podman_run(podman: list[str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*podman, "run", "--rm", *RUN_FLAGS, IMAGE, *args], capture_output=True, text=True, timeout=timeout
    )


def test_run_prints_and_exits(podman: list[str]) -> None:
    result = podman_run(podman, "sh", "-c", "echo hello from $(hostname); exit 7")
    assert result.returncode == 7, result.stderr
    assert result.stdout.startswith("hello from ")


def test_the_container_is_isolated(podman: list[str]) -> None:
    result = podman_run(podman, "sh", "-c", "echo $$; grep CapEff /proc/self/status; cat /proc/self/uid_map")
    assert result.returncode == 0, result.stderr
    pid, capeff, *_ = result.stdout.splitlines()
    assert pid == "1"
    assert capeff.split()[1] != "000001ffffffffff"  # podman's default capability set, not everything


def test_detach_logs_and_stop(podman: list[str]) -> None:
    name = "engine-podman-detach"
    subprocess.run(
        [*podman, "run", "-d", "--name", name, *RUN_FLAGS, IMAGE, "sh", "-c", "echo up; sleep 100"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        ps = subprocess.run(
            [*podman, "ps", "--format", "{{.Names}} {{.Status}}"], capture_output=True, text=True, timeout=30
        )
        assert f"{name} Up" in ps.stdout
        logs = subprocess.run([*podman, "logs", name], capture_output=True, text=True, timeout=30)
        assert "up" in logs.stdout
        # sh as pid 1 ignores SIGTERM: podman kills it after the timeout, as with runc.
        subprocess.run([*podman, "stop", "-t", "1", name], check=True, capture_output=True, timeout=60)
        inspect = subprocess.run(
            [*podman, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert inspect.stdout.split() == ["exited", "137"]
    finally:
        subprocess.run([*podman, "rm", "-f", name], capture_output=True, timeout=60)


def test_a_terminal_with_a_user_namespace(podman: list[str]) -> None:
    """`-t` with `--uidmap`: conmon's console socket is in a 0700 directory of root's, which the container's root
    (host uid 100000) cannot enter; engine create connects to it from the host (as runc does), not the init."""
    idmap = ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"]
    result = subprocess.run(
        [*podman, "run", "--rm", "-t", *idmap, *RUN_FLAGS, IMAGE, "sh", "-c", "tty; cat /proc/self/uid_map"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.replace("\r\n", "\n").split() == ["/dev/pts/0", "0", "100000", "65536"]
