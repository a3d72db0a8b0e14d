"""/dev and the console as runc 1.1.5 makes them (issue #8): a read-only /dev tmpfs, /dev/ptmx in linux.devices, and
a terminal in a user namespace whose console socket sits in a 0700 root-owned directory. Each scenario runs the same
bundle under /usr/sbin/runc and engine, side by side, and compares what the container sees.
"""

from __future__ import annotations

import os
import select
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.console_receiver import ConsoleReceiver
from tests.integration import test_runc_compat
from tests.integration.test_runc_compat import Runtime

runtimes = test_runc_compat.runtimes  # the fixture: [runc, engine], each with its own --root

USER_NAMESPACE = {
    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
}


def text(output: bytes) -> str:
    return output.decode(errors="replace").replace("\r\n", "\n")


def run_with_console_socket(rt: Runtime, bundle: Path, socket_dir: Path) -> str:
    """create --console-socket, start, everything the container wrote on its terminal until it hung up, delete."""
    cid = rt.new_id()
    with ConsoleReceiver(socket_dir / f"{rt.name}.sock") as receiver:
        rt.check("create", "--console-socket", str(receiver.path), "--bundle", str(bundle), cid)
        receiver.wait_master()
        rt.check("start", cid)
        output = receiver.wait_hangup(timeout=20)
    rt.wait_status(cid, "stopped")
    rt.check("delete", cid)
    return text(output)


def run_both(runtimes: list[Runtime], script: str, edit: Any, terminal: bool, socket_dir: Path) -> dict[str, str]:
    """{runtime name: what the container printed}, with or without a terminal."""
    outputs = {}
    for rt in runtimes:

        def configure(config: dict[str, Any]) -> None:
            config["process"]["terminal"] = terminal
            edit(config)

        bundle = rt.bundle(["sh", "-c", script], configure)
        if terminal:
            outputs[rt.name] = run_with_console_socket(rt, bundle, socket_dir)
        else:
            outputs[rt.name] = rt.check("run", "--bundle", str(bundle), rt.new_id()).stdout
    return outputs


# -- a read-only /dev ----------------------------------------------------------------------------------------

# Mount point, per-mount options, type and superblock options of /dev, /tmp and what is beneath them.
MOUNTS = r"""awk '$5 ~ /^\/(dev|tmp)(\/|$)/ { for (i = 7; $i != "-"; i++); print $5, $6, $(i+1), $(i+3) }' \
    /proc/self/mountinfo | sort"""
READ_ONLY_DEV = f"""
{MOUNTS}
ls /dev
touch /dev/x 2>&1 || true
touch /tmp/x 2>&1 || true
touch /tmp/sub/x && echo /tmp/sub is writable
[ -t 0 ] && stat -c '/dev/console %F %t:%T' /dev/console
true
"""


def read_only_dev_and_tmp(config: dict[str, Any]) -> None:
    for mount in config["mounts"]:
        if mount["destination"] == "/dev":
            mount["options"].append("ro")
    config["mounts"] += [
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "nosuid", "size=1m"]},
        {"destination": "/tmp/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
    ]


@pytest.mark.parametrize("terminal", [False, True], ids=["no-terminal", "terminal"])
def test_a_read_only_dev_is_made_read_only_once_everything_beneath_it_exists(
    runtimes: list[Runtime], tmp_path: Path, terminal: bool
) -> None:
    """runc mounts a read-only tmpfs (and /dev) read-write and makes the mount read-only at the end (finalizeRootfs):
    /dev/pts, /dev/shm, the devices, the symlinks and /dev/console are made first; the superblock stays rw."""
    outputs = run_both(runtimes, READ_ONLY_DEV, read_only_dev_and_tmp, terminal, tmp_path)
    assert outputs["engine"] == outputs["runc"]
    lines = outputs["engine"].splitlines()
    assert "/dev ro,nosuid tmpfs rw,size=65536k,mode=755" in lines
    assert "/tmp ro,nosuid,relatime tmpfs rw,size=1024k" in lines
    assert "touch: /dev/x: Read-only file system" in lines and "/tmp/sub is writable" in lines
    assert ("/dev/console character special file 88:0" in lines) == terminal


# -- /dev/ptmx in linux.devices --------------------------------------------------------------------------------

PTMX = """
stat -c '%n %F' /dev/ptmx
readlink /dev/ptmx
stat -L -c 'resolves to %t:%T' /dev/ptmx
(exec 3<>/dev/ptmx && echo opened /dev/ptmx) 2>&1
tty || true
"""


@pytest.mark.parametrize(
    "terminal, major, minor",
    [(False, 5, 2), (True, 5, 2), (False, 1, 3)],
    ids=["no-terminal", "terminal", "not-a-ptmx"],
)
def test_dev_ptmx_in_linux_devices_stays_the_link_to_the_containers_devpts(
    runtimes: list[Runtime], tmp_path: Path, terminal: bool, major: int, minor: int
) -> None:
    """runc skips /dev/ptmx in linux.devices, whatever it names, and keeps /dev/ptmx -> pts/ptmx; its cgroup rule
    for 5:2 holds whatever the list says. Before, engine made the node and lost the rule: a terminal failed."""

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["devices"] = [
            {"path": "/dev/ptmx", "type": "c", "major": major, "minor": minor, "fileMode": 0o666, "uid": 0, "gid": 0}
        ]

    outputs = run_both(runtimes, PTMX, edit, terminal, tmp_path)
    assert outputs["engine"] == outputs["runc"]
    lines = outputs["engine"].splitlines()
    assert lines[:4] == ["/dev/ptmx symbolic link", "pts/ptmx", "resolves to 5:2", "opened /dev/ptmx"]
    assert lines[4] == ("/dev/pts/0" if terminal else "not a tty")


# -- a terminal in a user namespace, the console socket in a 0700 directory -------------------------------------

USERNS_TERMINAL = """
tty
cat /proc/self/uid_map
stat -c '%n %t:%T %u:%g' /dev/console "$(tty)"
"""


def with_user_namespace(config: dict[str, Any]) -> None:
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"].update(USER_NAMESPACE)


def private_directory(tmp_path: Path) -> Path:
    """What supervisors use for their sockets: root's, 0700. The container's root (host uid 100000) cannot enter."""
    directory = tmp_path / "private"
    directory.mkdir(mode=0o700)
    st = directory.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o700)
    return directory


def test_a_terminal_with_a_user_namespace_behind_a_private_socket_directory(
    runtimes: list[Runtime], tmp_path: Path
) -> None:
    """runc connects to --console-socket from the host and sends the master there; engine create does the same with
    the master its init passes back. Before, engine's init connected itself, as the namespace's root: EACCES."""
    outputs = run_both(runtimes, USERNS_TERMINAL, with_user_namespace, True, private_directory(tmp_path))
    assert outputs["engine"] == outputs["runc"]
    assert outputs["engine"].splitlines() == [
        "/dev/pts/0",
        "         0     100000      65536",
        "/dev/console 88:0 0:5",
        "/dev/pts/0 88:0 0:5",
    ]


def run_in_a_terminal(rt: Runtime, bundle: Path, container_id: str) -> tuple[int, str]:
    """`run` in the foreground, its stdin and stdout a pty we hold (the caller's terminal): exit status, output."""
    caller_master, caller = os.openpty()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [rt.binary, "--root", str(rt.root), "run", "--bundle", str(bundle), container_id],
            stdin=caller,
            stdout=caller,
            stderr=errors,
            start_new_session=True,
        )
        os.close(caller)
        output = b""
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if not select.select([caller_master], [], [], 0.1)[0]:
                    if process.poll() is not None:
                        break  # exited, and everything it wrote has been read
                    continue
                try:
                    output += os.read(caller_master, 4096)
                except OSError:  # EIO: the runtime exited, nobody holds the caller's end any more
                    break
            status = process.wait(5)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            os.close(caller_master)
        errors.seek(0)
        assert not errors.read(), f"{rt.name} run wrote to stderr"
    return status, text(output)


def test_run_with_a_terminal_and_a_user_namespace(runtimes: list[Runtime]) -> None:
    """`run` in the foreground makes its own console socket in a fresh 0700 directory (engine, as go-runc): the same
    hand-off, and engine's relay of the caller's terminal."""
    outputs = {}
    for rt in runtimes:

        def edit(config: dict[str, Any]) -> None:
            config["process"]["terminal"] = True
            with_user_namespace(config)

        bundle = rt.bundle(["sh", "-c", USERNS_TERMINAL + "exit 3"], edit)
        status, output = run_in_a_terminal(rt, bundle, rt.new_id())
        assert status == 3, (rt.name, output)
        outputs[rt.name] = output
    assert outputs["engine"] == outputs["runc"]
    assert "/dev/console 88:0 0:5" in outputs["engine"].splitlines()
