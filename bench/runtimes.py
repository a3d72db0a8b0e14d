"""What bench/run.py and bench/scale.py share: running and timing a runtime's commands, the bundle, the machine.

Every operation is timed as the wall time of the whole command, as a caller (conmon, containerd-shim, a shell)
sees it. State lives under private `--root` directories on tmpfs, like the defaults /run/runc and /run/engine.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PR_SET_CHILD_SUBREAPER = 36
COPY_IGNORE = shutil.ignore_patterns(
    ".venv", ".cache", ".git", "__pycache__", "build", "*.egg-info", ".hypothesis", ".pytest_cache", ".ruff_cache"
)


class BenchError(Exception):
    pass


@dataclass
class Result:
    seconds: float
    returncode: int
    stdout: str
    stderr: str


def execute(argv: list[str], *, capture: bool = False) -> Result:
    """Run a command and time it. stdout goes to /dev/null unless captured: a created container's init
    inherits the runtime's stdio and would hold a pipe open forever. stderr goes to a file for the same
    reason; the file is opened before the clock starts so that only the command itself is timed."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        stdout = out if capture else subprocess.DEVNULL
        begin = time.perf_counter()
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err, check=False)
        seconds = time.perf_counter() - begin
        err.seek(0)
        out.seek(0)
        stderr = err.read().decode(errors="replace")
        stdout_text = out.read().decode(errors="replace") if capture else ""
    return Result(seconds, proc.returncode, stdout_text, stderr)


@dataclass
class Runtime:
    name: str
    binary: str
    root: Path
    tag: str = ""  # prefix of its container ids: two engines must not share cgroups (engine/<id>)

    def cid(self, base: str) -> str:
        return f"{self.tag}{base}"

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.root), *args]

    def __call__(self, *args: str, capture: bool = False, check: bool = True) -> Result:
        result = execute(self.argv(*args), capture=capture)
        if check and result.returncode != 0:
            raise BenchError(f"{self.name} {' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}")
        return result

    def exists(self, container_id: str) -> bool:
        # Both keep one directory per container under --root; looking is cheaper than a `state` command.
        return (self.root / container_id).exists()

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def cleanup(self) -> None:
        for container_id in self.ids():
            self("delete", "--force", container_id, check=False)


# ---- the engines --------------------------------------------------------------------------------------------


def interpreter_of(script: str) -> str:
    """The Python an `engine` command runs: its #! line's (setup.sh's wrapper), or for the pip-installed
    launcher (#!/bin/sh) the python3 beside it, which is what the launcher runs."""
    with open(script, "rb") as f:
        first = f.readline().decode(errors="replace").strip()
    if first.startswith("#!") and "python" in first:
        return first[2:].split()[0]
    beside = Path(script).resolve().parent / "python3"
    return str(beside) if beside.exists() else sys.executable


def compile_engine(python: str) -> None:
    """PYTHONDONTWRITEBYTECODE=1 is set here, so nothing would ever write engine's .pyc files and every
    command would compile engine from source. Installed packages ship compiled; so must the engine we time. The
    hot commands' bundle too (engine/hotload.py), as setup.sh builds it: a module edited since is served from source."""
    subprocess.run([python, "-m", "compileall", "-q", "engine", "state", "hooks"], cwd=REPO, check=True)
    subprocess.run([python, "-m", "engine.hotload_codegen"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def pip_install_engine(directory: Path, python: str) -> str:
    """A new venv in `directory` with this checkout pip-installed (non-editable, dependencies from the package
    index), as a user gets engine: its bin/engine."""
    source = directory / "source"
    shutil.copytree(REPO, source, ignore=COPY_IGNORE)  # the build writes build/ and *.egg-info into its source
    venv = directory / "venv"
    base = subprocess.run(
        [python, "-c", "import sys; print(getattr(sys, '_base_executable', sys.executable))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    result = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"pip install of engine failed: {result.stderr[-2000:]}")
    return str(venv / "bin" / "engine")


# ---- the bundle and the machine ------------------------------------------------------------------------------


def set_child_subreaper() -> None:
    """Become the subreaper, as conmon and containerd-shim are: the created inits re-parent to us, so after
    `kill` we can wait for the exit (and reap it) the way a real caller does."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def ensure_rootfs(rootfs: Path) -> None:
    if not (rootfs / "bin" / "busybox").exists():
        subprocess.run([str(REPO / "tests" / "make-rootfs.sh"), str(rootfs)], check=True)


def copy_rootfs(source: Path, dest: Path, attempts: int = 3) -> Path:
    """cp -a (symlinks, modes, any device nodes as they are); retried, since a rebuild of the shared rootfs
    by someone else may be swapping it in at this very moment."""
    for attempt in range(attempts):
        ensure_rootfs(source)
        shutil.rmtree(dest, ignore_errors=True)
        if subprocess.run(["cp", "-a", str(source), str(dest)], check=False).returncode == 0:
            return dest
        if attempt < attempts - 1:
            time.sleep(1)
    raise BenchError(f"could not copy the rootfs {source}")


def write_bundle(directory: Path, args: list[str], rootfs: Path, oci_version: str | None = None) -> Path:
    """`engine spec`'s default config (no terminal), the busybox rootfs read-only: one config for both."""
    from engine.spec.default import default_config  # REPO is on sys.path: bench/ is imported from it

    directory.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = default_config(args, terminal=False)
    config["root"] = {"path": str(rootfs), "readonly": True}
    if oci_version is not None:
        config["ociVersion"] = oci_version
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Wait for a killed init to exit, and reap it if it is our child (we are the subreaper)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            # Not ours to reap (someone else's subreaper): gone or a zombie is stopped for both runtimes.
            try:
                stat = Path(f"/proc/{pid}/stat").read_bytes()
            except FileNotFoundError:
                return
            if stat[stat.rindex(b")") + 2 :].split()[0] in (b"Z", b"X"):
                return
        time.sleep(0.001)
    raise BenchError(f"pid {pid} did not exit within {timeout:.0f}s of SIGKILL")


def wait_for_load(limit: float, timeout: float) -> None:
    """Others run tests on this machine: starting when it is quieter gives tighter numbers (both runtimes
    still see the same noise either way). Gives up after `timeout` and measures anyway."""
    deadline = time.monotonic() + timeout
    while os.getloadavg()[0] >= limit and time.monotonic() < deadline:
        print(f"load average {os.getloadavg()[0]:.1f} >= {limit}: waiting", file=sys.stderr)
        time.sleep(15)


def reap_strays() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def reap_all(timeout: float) -> list[int]:
    """Wait for every orphan that re-parented to us to exit (engine's exit monitor, a daemon per --root,
    exits within a second of its root being removed); return the pids still alive after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.05)
        except ChildProcessError:
            return []
    try:
        return [int(p) for p in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()]
    except OSError:
        return [-1]  # still have children, cannot say which


@contextlib.contextmanager
def scratch(keep: bool, on_disk: bool = False) -> Iterator[Path]:
    """The bench's private directory, on a tmpfs of its own: the runtimes' default roots (/run/runc,
    /run/engine) are on tmpfs wherever /run is (systemd makes it one), and state.json writes and their fsyncs
    cost there what they cost in real use. This machine's /run is the root disk (ext4), where each fsync costs
    ms; `on_disk` measures there instead (the directory under /run as it is)."""
    base = "/run" if os.path.isdir("/run") and os.access("/run", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="engine-bench-", dir=base))
    mounted = False
    if not on_disk and os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", str(path)]).returncode == 0
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)
            if mounted:
                subprocess.run(["umount", "--lazy", str(path)])
            with contextlib.suppress(OSError):
                path.rmdir()


def filesystem_of(path: Path) -> str:
    """The type of the filesystem `path` is on (the longest mount point above it in /proc/self/mountinfo)."""
    best, fstype = "", "unknown"
    target = os.path.realpath(path)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        mount_point = fields[4].replace("\\040", " ")
        above = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if above and len(mount_point) >= len(best):
            best, fstype = mount_point, fields[fields.index("-") + 1]
    return fstype


def runc_version(binary: str) -> str:
    lines = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()
    fields = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    version = lines[0].removeprefix("runc version ").strip()
    commit = fields.get("commit", "").strip()
    return f"runc {version}" + (f" ({commit})" if commit and commit != version else "")


def engine_revision() -> str:
    """Which engine was measured: the commit, and whether engine's code had uncommitted changes (the repo is
    shared, so the working tree may be ahead of HEAD)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "engine", "state", "hooks", "bin"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "engine (unknown revision)"
    return f"engine {commit}" + (" + uncommitted changes" if dirty else "")


def interpreter() -> str:
    """The interpreter every engine command starts (the venv's base), since it sets the floor: a distribution's
    statically linked, PGO build starts ~15% faster than a --enable-shared one (README, Performance)."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def machine() -> str:
    """Cores, CPU model, kernel: what the lead needs to compare two tables."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores{f' ({model})' if model else ''}, kernel {platform.release()}"
