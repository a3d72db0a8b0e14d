"""A throwaway unprivileged user for the rootless tests, and an engine install that user can run.

    with RootlessUser.create(rootfs) as user:     # useradd (a unique name), /etc/subuid + subgid entries
        user.engine("run", "--bundle", ..., "c1")   # runuser -u <name> -- <engine>, as the user types it
        user.run(["podman", ...])

Everything global is the user's own and goes with it: its home (podman's storage), its XDG_RUNTIME_DIR (engine's
and podman's state), its processes (killed by pid: podman's pause process outlives the test), its passwd and
subordinate id entries (userdel, and a check that none is left). Two test runs at once get two users.

The install: a user cannot run the venv's interpreter on this machine (pyenv's, under /root, mode 0700), and
would not reach a checkout under /root. So the user's `engine` runs the first interpreter of the same Python
version the user can execute (the venv's, else Debian's /usr/bin/python3.X) on this checkout and the venv's
packages where they are, or, when the user cannot read them there, on a copy of engine, state and hooks and of
their runtime dependencies in a world-readable directory: the same code, installed where a user reaches it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "state", "hooks")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def subordinate_ids(path: str, name: str) -> list[tuple[int, int]]:
    with open(path) as f:
        return [
            (int(s), int(c)) for n, s, c in (line.strip().split(":") for line in f if line.count(":") == 2) if n == name
        ]


def _runtime_distributions() -> list[importlib.metadata.Distribution]:
    """engine's distribution requirements and theirs, without extras (what `pip install engine` would add)."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(importlib.metadata.requires("engine") or [])
    while todo:
        requirement = todo.pop()
        if "extra ==" in requirement:
            continue
        name = re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an environment marker that does not apply here
        seen[name] = dist
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
    return list(seen.values())


def install_for_users(base: Path, python: str) -> Path:
    """Copy engine and its runtime dependencies below base (world-readable); return the `engine` command."""
    lib = base / "lib"
    lib.mkdir(parents=True)
    for package in PACKAGES:
        shutil.copytree(REPO / package, lib / package)  # with __pycache__: copy2 keeps the mtimes they check
    for dist in _runtime_distributions():
        for file in dist.files or []:
            if file.parts[0] == ".." or file.suffix == ".pth":
                continue
            source = Path(str(dist.locate_file(file)))
            if source.is_file():
                (lib / file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, lib / file)
    command = base / "bin" / "engine"
    command.parent.mkdir()
    command.write_text(
        f"#!{python} -I\nimport sys\nsys.path[:0] = [{str(lib)!r}]\nfrom engine.cli import main\nsys.exit(main())\n"
    )
    command.chmod(0o755)
    for directory, _, files in os.walk(base):
        os.chmod(directory, 0o755)
        for name in files:
            path = os.path.join(directory, name)
            os.chmod(path, os.stat(path).st_mode | 0o444)
    return command


class RootlessUser:
    def __init__(self, name: str, base: Path) -> None:
        entry = pwd.getpwnam(name)
        self.name, self.uid, self.gid = name, entry.pw_uid, entry.pw_gid
        self.base = base
        self.home = Path(entry.pw_dir)
        self.xdg = base / "run"  # its XDG_RUNTIME_DIR, as pam_systemd would make /run/user/<uid>
        self.subuids = subordinate_ids("/etc/subuid", name)
        self.subgids = subordinate_ids("/etc/subgid", name)
        self.engine_path = ""
        self.rootfs = base / "rootfs"

    # --- setting up and tearing down ---------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def create(cls, rootfs: Path) -> Iterator[RootlessUser]:
        base = Path(tempfile.mkdtemp(prefix="engine-rootless-"))
        base.chmod(0o755)
        name = f"engrl{uuid.uuid4().hex[:10]}"
        user = None
        try:
            subprocess.run(
                [
                    "useradd",
                    "--create-home",
                    "--home-dir",
                    str(base / "home"),
                    "--shell",
                    "/bin/sh",
                    "--user-group",
                    name,
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            user = cls(name, base)
            user._ensure_subordinate_ids()
            user._set_up(rootfs)
            yield user
        finally:
            if user is not None:
                user._kill_processes()
            subprocess.run(["userdel", "--remove", name], capture_output=True, timeout=60)
            for path in ("/etc/subuid", "/etc/subgid"):
                left = subordinate_ids(path, name)
                assert not left, f"{path} still has entries for {name}: {left}"
            shutil.rmtree(base, ignore_errors=True)

    def _ensure_subordinate_ids(self) -> None:
        """Debian's useradd allocates 65536 of each (SUB_UID_MIN.. in login.defs); add them where it did not."""
        if self.subuids and self.subgids:
            return
        ends = [s + c for path in ("/etc/subuid", "/etc/subgid") for _, s, c in self._all(path)]
        start = max([100000, *ends])
        subprocess.run(
            [
                "usermod",
                "--add-subuids",
                f"{start}-{start + 65535}",
                "--add-subgids",
                f"{start}-{start + 65535}",
                self.name,
            ],
            check=True,
            capture_output=True,
        )
        self.subuids = subordinate_ids("/etc/subuid", self.name)
        self.subgids = subordinate_ids("/etc/subgid", self.name)

    @staticmethod
    def _all(path: str) -> list[tuple[str, int, int]]:
        with open(path) as f:
            return [(n, int(s), int(c)) for n, s, c in (line.strip().split(":") for line in f if line.count(":") == 2)]

    def _set_up(self, rootfs: Path) -> None:
        self.xdg.mkdir(mode=0o700)
        os.chown(self.xdg, self.uid, self.gid)
        # The user's own copy of the busybox rootfs: its root may make mount points in it.
        subprocess.run(["cp", "-a", str(rootfs), str(self.rootfs)], check=True)
        subprocess.run(["chown", "-R", "-h", f"{self.uid}:{self.gid}", str(self.rootfs)], check=True)
        python = self._python()
        self.engine_path = str(self._engine_in_place(python) or install_for_users(self.base / "install", python))

    def _engine_in_place(self, python: str) -> Path | None:
        """A command running this checkout and venv where they are, if the user can read them (a copy takes
        seconds, many more under the cgroup v2 guest's emulation); None if not (a checkout below /root)."""
        paths = [str(REPO), *(p for p in sys.path if p.endswith("site-packages"))]
        probe = f"import sys; sys.path[:0] = {paths!r}; import engine.cli, engine.create, pydantic, transitions"
        if self.run([python, "-I", "-c", probe]).returncode != 0:
            return None
        command = self.base / "engine"
        command.write_text(
            f"#!{python} -I\nimport sys\nsys.path[:0] = {paths!r}\nfrom engine.cli import main\nsys.exit(main())\n"
        )
        command.chmod(0o755)
        return command

    def _python(self) -> str:
        wanted = f"{sys.version_info.major}.{sys.version_info.minor}"
        candidates = [sys.executable, f"/usr/bin/python{wanted}", f"/usr/local/bin/python{wanted}"]
        for python in candidates:
            if not os.path.exists(python):
                continue
            probe = self.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
            if probe.returncode == 0 and probe.stdout.strip() == wanted:
                return python
        import pytest

        pytest.skip(f"no Python {wanted} that an unprivileged user can run (tried {', '.join(candidates)})")

    def processes(self) -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/status") as f:
                        uid_line = next(line for line in f if line.startswith("Uid:"))
                except (OSError, StopIteration):
                    continue
                if int(uid_line.split()[1]) == self.uid:
                    found.append(int(entry))
        return found

    def _kill_processes(self) -> None:
        """Every process left running as the user (podman's pause process, a failed test's container), by pid:
        they are the test user's own, which nobody else has."""
        deadline = time.monotonic() + 10
        while (pids := self.processes()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    # --- running things as the user ----------------------------------------------------------------------

    def env(self, **extra: str | None) -> dict[str, str]:
        env = {
            "PATH": PATH,
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "XDG_RUNTIME_DIR": str(self.xdg),
        }
        for key, value in extra.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def run(
        self,
        args: list[str],
        *,
        cwd: Path | str | None = None,
        timeout: float = 60,
        env: dict[str, str] | None = None,
        cgroup: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """args run as the user, from a clean environment (runuser keeps none of ours); in the cgroup v2
        directory `cgroup` if given (as a login session's processes sit in their delegated scope). Output
        through files: a created container's init inherits them and would hold a pipe open."""
        environment = env if env is not None else self.env()
        command = ["runuser", "-u", self.name, "--", "env", "-i", *(f"{k}={v}" for k, v in environment.items())]
        if cgroup is not None:
            command = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup), *command]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            code = subprocess.run(
                [*command, *args], stdout=out, stderr=err, timeout=timeout, cwd=cwd or self.base
            ).returncode
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(args, code, out.read(), err.read())

    def engine(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run([self.engine_path, *args], **kw)

    def mkdir(self, name: str) -> Path:
        path = self.base / name
        path.mkdir()
        os.chown(path, self.uid, self.gid)
        return path
