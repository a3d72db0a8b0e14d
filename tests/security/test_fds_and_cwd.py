"""CVE-2024-21626 and its family: a file descriptor of the runtime's that reaches the container (or is open while the
container's cwd is resolved) leads out of the rootfs. process.cwd = /proc/self/fd/N turned such an fd into the
container's working directory, from which `..` climbs to the host's root."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.security.conftest import Runtime, one_line_error

# From the cwd, far more `..` than any path is deep: inside the container this stops at the container's root;
# from a directory of the host's it stops at the host's root. And if the cwd is a procfs of the host's (one the
# runtime held open), 1/root is the host's root.
CLIMB = "/".join([".."] * 40)
SHOW_TOP = f'stat -c "%d %i" {CLIMB} 2>&1; stat -L -c "%d %i" 1/root 2>&1; ls -a {CLIMB} 2>&1 | head -50'


def host_root() -> str:
    st = os.stat("/")
    return f"{st.st_dev} {st.st_ino}"


def test_cve_2024_21626_cwd_through_a_leaked_fd(runtime: Runtime, tmp_path: Path) -> None:
    """cwd /proc/self/fd/N for every low N: engine refuses a cwd through a magic link (one line, at create); a
    runtime that lets it through must at least not land outside the container."""
    marker = f"host-marker-{os.getpid()}"
    (tmp_path / marker).touch()
    for fd in range(3, 10):

        def edit(config: dict, fd: int = fd) -> None:
            config["process"]["cwd"] = f"/proc/self/fd/{fd}"

        result = runtime.run(runtime.config(["sh", "-c", SHOW_TOP], edit=edit))
        assert host_root() not in result.stdout and marker not in result.stdout, f"fd {fd}: escaped: {result.stdout}"
        if not runtime.is_runc:
            assert "process.cwd" in one_line_error(result), result.stderr


def test_cve_2024_21626_exec_cwd_through_a_leaked_fd(runtime: Runtime) -> None:
    """The same through `exec --cwd`: nothing of the runtime's may be a way out while it joins the container."""
    container_id, created = runtime.create(runtime.config(["sleep", "60"]))
    assert created.returncode == 0, created.stderr
    for fd in range(3, 10):
        result = runtime("exec", "--cwd", f"/proc/self/fd/{fd}", container_id, "sh", "-c", SHOW_TOP)
        assert host_root() not in result.stdout, f"fd {fd}: escaped: {result.stdout}"
        if not runtime.is_runc:
            assert "process.cwd" in one_line_error(result), result.stderr


def test_listen_fds_pass_only_with_our_own_listen_pid(runtime: Runtime, tmp_path: Path) -> None:
    """LISTEN_FDS in the environment passes fds 3.. on only when LISTEN_PID is the runtime's own pid (what
    sd_listen_fds checks): otherwise fd 3 is whatever the caller had open, here a directory of the host's."""
    secret = tmp_path / "host-dir"
    secret.mkdir()
    (secret / "host-secret").write_text("x")
    env = {**os.environ, "LISTEN_FDS": "1", "LISTEN_PID": "1"}  # pid 1 of ours is not the runtime
    script = "ls /proc/self/fd/3/ 2>&1; ls -a /proc/self/fd"
    opens_fd_3 = ("sh", "-c", 'exec 3<"$0"; exec "$@"', str(secret))  # the caller has a host directory at fd 3
    result = runtime.run(runtime.config(["sh", "-c", script]), env=env, prefix=opens_fd_3)
    assert result.returncode == 0, result.stderr
    assert "host-secret" not in result.stdout, result.stdout


def test_no_fd_of_the_callers_reaches_the_container(runtime: Runtime, tmp_path: Path) -> None:
    """The caller's inheritable fds, low (3) and far above anything the runtime keeps open for itself (200), are
    closed before the container's program runs: each one is a host directory here, which would be a way out."""
    secret = tmp_path / "host-dir"
    secret.mkdir()
    (secret / "host-secret").write_text("x")
    opens_fds = (
        sys.executable, "-c",
        "import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.dup2(fd, 3); os.dup2(fd, 200); "
        "os.execvp(sys.argv[2], sys.argv[2:])",
        str(secret),
    )  # fmt: skip
    script = "ls /proc/self/fd/3/ /proc/self/fd/200/ 2>&1; ls /proc/self/fd"
    result = runtime.run(runtime.config(["sh", "-c", script]), prefix=opens_fds)
    assert result.returncode == 0, result.stderr
    assert "host-secret" not in result.stdout, result.stdout
