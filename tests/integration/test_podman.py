"""podman drives engine through conmon: run, exit codes, detach + logs + stop (the way users meet a runtime).

The image is the busybox test rootfs imported with `podman import` (no registry). podman keeps its storage in
a private --root/--runroot so the host's podman state is never touched, and passes engine a private --root
(--runtime-flag): a running container's state.json there, written in engine's own format with the pid podman
reports, proves that engine (not some other runtime podman could fall back to) runs it. conmon limits nproc and
the hard nofile is 20000 here: every run passes explicit --ulimit values.
"""

from __future__ import annotations

import json
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
def engine_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("podman-engine-root")


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory, rootfs: Path, engine_root: Path) -> Iterator[list[str]]:
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
        "--runtime-flag",
        f"root={engine_root}",
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


def run_by_engine(podman: list[str], engine_root: Path, container_id: str) -> int:
    """The running container's init pid, as podman reports it, after checking that engine runs it: its
    state.json in the --root podman gave engine, in engine's format (fields runc's state.json does not have),
    names the same process."""
    pid = int(podman_out(podman, "inspect", "--format", "{{.State.Pid}}", container_id))
    record = json.loads((engine_root / container_id / "state.json").read_text())
    assert record["id"] == container_id and record["status"] == "running", record
    assert record["pid"] == pid and {"creator_pid", "pid_start_time", "cgroups"} <= set(record), record
    return pid


def podman_out(podman: list[str], *args: str) -> str:
    result = subprocess.run([*podman, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_container_is_isolated(podman: list[str], engine_root: Path) -> None:
    """A user namespace from podman's --uidmap/--gidmap (engine writes the maps), podman's default capability
    set, pid 1 of its own pid namespace: seen through `podman exec`, which engine runs too."""
    mapping = ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"]
    container_id = podman_out(podman, "run", "-d", *mapping, *RUN_FLAGS, IMAGE, "sleep", "100")
    try:
        pid = run_by_engine(podman, engine_root, container_id)
        assert Path(f"/proc/{pid}/uid_map").read_text().split() == ["0", "100000", "65536"]
        script = (
            "echo $$; grep CapEff /proc/self/status; cat /proc/self/uid_map /proc/self/gid_map; cat /proc/1/cmdline"
        )
        out = podman_out(podman, "exec", container_id, "sh", "-c", script).splitlines()
        assert out[0] != "1" and out[4].replace("\0", " ").strip() == "sleep 100", out  # pid 1 is the program
        assert out[1].split()[1] != "000001ffffffffff"  # podman's default capability set, not everything
        assert out[2].split() == ["0", "100000", "65536"] and out[3].split() == ["0", "100000", "65536"], out
    finally:
        subprocess.run([*podman, "rm", "-f", container_id], capture_output=True, timeout=60)


def test_detach_logs_and_stop(podman: list[str], engine_root: Path) -> None:
    name = "engine-podman-detach"
    container_id = podman_out(podman, "run", "-d", "--name", name, *RUN_FLAGS, IMAGE, "sh", "-c", "echo up; sleep 100")
    try:
        run_by_engine(podman, engine_root, container_id)
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
