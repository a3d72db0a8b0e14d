"""Smaller holes of issue #7 point 7: startContainer hooks with more privilege than the container's process, an
`exec` that reads the bundle again, an `exec --process` that drops the container's confinement, and a pid-file
temp that follows a planted symlink."""

from __future__ import annotations

import ctypes
import json
import os
import struct
import threading
from pathlib import Path

import pytest

from tests.security.conftest import Runtime, bind

STATUS_FIELDS = r"^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):"


@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_start_container_hooks_run_as_the_container_process(
    runtime: Runtime, tmp_path: Path, no_new_privileges: bool
) -> None:
    """A startContainer hook runs in the container as its process will: the same user, capabilities, no_new_privs
    and seccomp filter (runc's order). It used to run as the init's root with every capability."""
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    report = f"grep -E '{STATUS_FIELDS}' /proc/self/status"

    def edit(config: dict) -> None:
        config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [1001]}
        config["process"]["noNewPrivileges"] = no_new_privileges
        config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}],
        }
        config["mounts"].append(bind(out, "/out"))
        config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", f"{report} > /out/hook"]}]}

    result = runtime.run(runtime.config(["sh", "-c", f"{report} > /out/process"], edit=edit))
    assert result.returncode == 0, result.stderr
    process, hook = (out / "process").read_text(), (out / "hook").read_text()
    assert "Seccomp:\t2" in process and "Uid:\t1000" in process, process
    assert hook == process, f"hook:\n{hook}\nprocess:\n{process}"


IN_OPEN = 0x20
IN_CLOSE_NOWRITE = 0x10
IN_CLOEXEC = 0o2000000


class BundleWatch:
    """Counts the opens of bundle/config.json, and replaces it with `replacement` as soon as the first reader has
    closed it (a bundle that changes under the runtime: another tenant of a shared directory, or a slow copy)."""

    def __init__(self, bundle: Path, replacement: bytes) -> None:
        self.bundle, self.replacement = bundle, replacement
        self.opens = 0
        self.swapped = False
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(IN_CLOEXEC | os.O_NONBLOCK)
        assert self.fd >= 0
        assert self.libc.inotify_add_watch(self.fd, os.fsencode(bundle), IN_OPEN | IN_CLOSE_NOWRITE) >= 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        import select

        while not self.done.is_set():
            if not select.select([self.fd], [], [], 0.05)[0]:
                continue
            data = os.read(self.fd, 4096)
            offset = 0
            while offset < len(data):
                _, mask, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16 : offset + 16 + length].rstrip(b"\0")
                offset += 16 + length
                if name != b"config.json":
                    continue
                if mask & IN_OPEN:
                    self.opens += 1
                if mask & IN_CLOSE_NOWRITE and not self.swapped:
                    (self.bundle / "swap.json").write_bytes(self.replacement)
                    os.replace(self.bundle / "swap.json", self.bundle / "config.json")
                    self.swapped = True

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)
        os.close(self.fd)


def test_exec_uses_the_config_create_validated(runtime: Runtime) -> None:
    """create validated config.json, then copied the file again for exec: a config swapped in between (here one
    that grants every capability) was what `exec` gave its process. The bundle must be read once, by create, and
    exec must get the config create worked from."""
    runtime.falls("its exec reads the process from the bundle's config.json again, whatever it holds by then")
    config = runtime.config(["sleep", "60"])
    evil = json.loads(json.dumps(config))
    every = ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_MODULE", "CAP_DAC_READ_SEARCH", "CAP_NET_ADMIN"]
    for name in ("bounding", "effective", "permitted"):
        evil["process"]["capabilities"][name] = every
    evil["process"]["env"].append("SWAPPED=yes")
    bundle = runtime.bundle(config)
    watch = BundleWatch(bundle, json.dumps(evil).encode())
    try:
        container_id = runtime.new_id()
        created = runtime("create", "--bundle", str(bundle), container_id)
        assert created.returncode == 0, created.stderr
        result = runtime("exec", container_id, "sh", "-c", "grep CapEff /proc/self/status; echo swapped=$SWAPPED")
    finally:
        watch.stop()
    assert watch.swapped, "the bundle was never read"
    assert watch.opens == 1, f"the bundle's config.json was opened {watch.opens} times (create and exec: once)"
    assert result.returncode == 0, result.stderr
    cap_eff = int(result.stdout.split()[1], 16)
    assert not cap_eff & (1 << 21), f"exec got CAP_SYS_ADMIN from the swapped config: {result.stdout}"
    assert "swapped=yes" not in result.stdout


def test_exec_process_file_keeps_the_container_confinement(runtime: Runtime, tmp_path: Path) -> None:
    """`exec --process FILE` without noNewPrivileges or rlimits takes the container's (as runc does for rlimits,
    apparmorProfile and selinuxLabel): leaving a field out must not lift the confinement."""
    runtime.falls("an absent noNewPrivileges in --process is false, whatever the container's is")

    def edit(config: dict) -> None:
        config["process"]["noNewPrivileges"] = True
        config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 321}]

    container_id, created = runtime.create(runtime.config(["sleep", "60"], edit=edit))
    assert created.returncode == 0, created.stderr
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["sh", "-c", "grep NoNewPrivs /proc/self/status; ulimit -n"], "cwd": "/"}))
    result = runtime("exec", "--process", str(process), container_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["NoNewPrivs:", "1", "321"], result.stdout


def test_pid_file_temp_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    """--pid-file in a directory others can write (/tmp): the temporary file next to it used a predictable name
    and was opened without O_EXCL/O_NOFOLLOW, so a planted symlink made the runtime (root) write elsewhere."""
    from state.store import write_file_atomically

    victim = tmp_path / "victim"
    victim.write_text("precious")
    pid_file = tmp_path / "container.pid"
    for name in (f".container.pid.{os.getpid()}.tmp", ".container.pid.tmp"):
        (tmp_path / name).symlink_to(victim)
    write_file_atomically(str(pid_file), b"4242")
    assert victim.read_text() == "precious"
    assert pid_file.read_text() == "4242" and not pid_file.is_symlink()
    left = {p.name for p in tmp_path.iterdir() if p.name.startswith(".")}
    assert left == {".container.pid.tmp", f".container.pid.{os.getpid()}.tmp"}  # no temp file of ours left


def test_cve_2022_29162_no_inheritable_capabilities(runtime: Runtime) -> None:
    """`exec --cap` (and the default config of `spec`) must not give a process inheritable capabilities: with
    them, a program with inheritable file capabilities gains them at execve (CVE-2022-29162, runc; CVE-2022-27650,
    crun; CVE-2022-24769, moby's defaults)."""
    spec_dir = runtime.tmp / "spec"
    spec_dir.mkdir()
    assert runtime("spec", "--bundle", str(spec_dir)).returncode == 0
    caps = json.loads((spec_dir / "config.json").read_text())["process"]["capabilities"]
    assert not caps.get("inheritable"), caps
    container_id, created = runtime.create(runtime.config(["sleep", "60"]))
    assert created.returncode == 0, created.stderr
    result = runtime("exec", "--cap", "CAP_NET_ADMIN", container_id, "grep", "-E", "^Cap(Inh|Eff)", "/proc/self/status")
    assert result.returncode == 0, result.stderr
    fields = dict(line.split(":\t") for line in result.stdout.splitlines())
    assert int(fields["CapInh"], 16) == 0 and int(fields["CapEff"], 16) & (1 << 12), result.stdout
