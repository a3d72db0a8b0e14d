"""process.terminal for real, as root: a pty from the container's own devpts, its master on --console-socket.

Two layers:
- the container side on its own: a harness process enters a new mount namespace, mounts a devpts
  newinstance and /proc inside the busybox rootfs, chroots there and calls engine.pty.setup_console
  exactly as the init does after pivot_root, then execs sh. This needs nothing but engine/console.py and engine/pty.py.
- the whole runtime: `engine create --console-socket` + `engine start`, `engine run` relaying the caller's
  stdio or terminal.

Inside the container the same script checks what a terminal means: `tty` names /dev/pts/0, `stty size` is
consoleSize, stdin and stdout are terminals, the shell is a session leader whose controlling terminal is
/dev/pts/0 (136:0) with its group in the foreground, /dev/console is the pty, and ^C typed on the master
reaches the container as SIGINT.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path
from typing import Any

import pytest

from engine import console, pty
from tests.console_receiver import ConsoleReceiver
from tests.integration.conftest import ENGINE, Engine

REPO = Path(__file__).resolve().parents[2]

# Prints KEY=value lines, then waits: a line of input is echoed back as GOT=, ^C makes it exit 3.
SCRIPT = r"""
echo "TTY=$(tty)"
echo "SIZE=$(stty size)"
[ -t 0 ] && echo "STDIN=tty"
[ -t 1 ] && echo "STDOUT=tty"
echo "SELF=$$"
echo "STAT=$(cat /proc/$$/stat)"
echo "CONSOLE=$(stat -c '%t:%T' /dev/console)"
echo "OWNER=$(stat -c '%u:%g' "$(tty)")"
trap 'echo INTERRUPTED; exit 3' INT
echo READY
read line
echo "GOT=$line"
while :; do sleep 0.1; done
"""

SIZE = {"height": 33, "width": 101}


def parse(output: bytes) -> dict[str, str]:
    """KEY=value lines of the script's output (the pty turns \n into \r\n)."""
    values = {}
    for line in output.decode(errors="replace").replace("\r\n", "\n").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isupper():
            values.setdefault(key, value)
    return values


def check_terminal_facts(values: dict[str, str], size: dict[str, int], uid: int = 0) -> None:
    assert values["TTY"] == "/dev/pts/0"
    assert values["SIZE"] == f"{size['height']} {size['width']}"
    assert values.get("STDIN") == "tty" and values.get("STDOUT") == "tty"
    fields = values["STAT"].rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp session tty_nr tpgid
    pgrp, session, tty_nr, tpgid = int(fields[2]), int(fields[3]), int(fields[4]), int(fields[5])
    assert session == int(values["SELF"]), "the process leads its own session (setsid)"
    assert tty_nr == os.makedev(pty.PTY_SLAVE_MAJOR, 0), "its controlling terminal is /dev/pts/0"
    assert tpgid == pgrp, "its process group is the terminal's foreground group"
    assert values["CONSOLE"] == "88:0", "/dev/console is the pty (136:0 in hex)"
    assert values["OWNER"] == f"{uid}:5", "the slave belongs to the process's user and devpts's gid=5"


def interact(receiver: ConsoleReceiver) -> dict[str, str]:
    """Type a line and a ^C on the master; returns everything the container printed, parsed."""
    receiver.wait_for(b"READY")
    receiver.write(b"hello\n")
    receiver.wait_for(b"GOT=hello")
    receiver.write(b"\x03")  # the terminal's INTR character: SIGINT for the foreground group
    output = receiver.wait_hangup()
    assert b"INTERRUPTED" in output
    return parse(output)


# --- The container side, without the runtime ----------------------------------------------------------

HARNESS = r"""
import json, os, signal, sys
from engine import console, pty                # imported before the root changes, as in the init
from engine.linux import syscalls as sc

rootfs, sock_path, size, uid, script = sys.argv[1:]
sock = console.connect_console_socket(sock_path)   # a host path: connect before the root changes
sc.unshare(sc.CLONE_NEWNS)
sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
sc.mount("tmpfs", rootfs + "/dev", "tmpfs", sc.MS_NOSUID, "mode=755")
os.mkdir(rootfs + "/dev/pts")
sc.mount("devpts", rootfs + "/dev/pts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC,
         "newinstance,ptmxmode=0666,mode=0620,gid=5")
os.symlink("pts/ptmx", rootfs + "/dev/ptmx")
sc.mount("proc", rootfs + "/proc", "proc", 0)
os.chroot(rootfs)
os.chdir("/")
pty.setup_console(sock, json.loads(size), uid=int(uid))
# As the init does (process_setup.restore_signals): a signal ignored by whoever started the tests (a shell's `&`
# ignores SIGINT) stays ignored across execve, and sh could not trap it.
signal.signal(signal.SIGINT, signal.SIG_DFL)
# The container's environment, not ours: busybox prefers $LINES/$COLUMNS (pytest sets them) to the tty's size.
os.execve("/bin/sh", ["sh", "-c", script], {"PATH": "/bin:/sbin", "TERM": "xterm"})
"""


@pytest.mark.parametrize("uid", [0, 1000])
def test_setup_console_in_a_mount_namespace(tmp_path: Path, rootfs: Path, uid: int) -> None:
    with ConsoleReceiver(tmp_path / "console.sock") as receiver, tempfile.TemporaryFile() as errors:
        harness = subprocess.Popen(
            [sys.executable, "-c", HARNESS, str(rootfs), str(receiver.path), json.dumps(SIZE), str(uid), SCRIPT],
            stdin=subprocess.DEVNULL,
            stdout=errors,
            stderr=errors,
            cwd=REPO,
        )
        try:
            receiver.wait_master()
            assert receiver.name == "/dev/pts/ptmx"
            values = interact(receiver)
            assert harness.wait(10) == 3
        finally:
            if harness.poll() is None:
                harness.kill()
                harness.wait()
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
        assert not stderr, stderr
    check_terminal_facts(values, SIZE, uid)


# --- The runtime: create/start, run -------------------------------------------------------------------


def terminal_bundle(engine: Engine, args: list[str], size: dict[str, int] | None = SIZE) -> Path:
    bundle = engine.bundle(args)
    config: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = True
    if size:
        config["process"]["consoleSize"] = size
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def test_create_start_with_console_socket(engine: Engine, tmp_path: Path) -> None:
    bundle = terminal_bundle(engine, ["sh", "-c", SCRIPT])
    container_id = engine.new_id()
    with ConsoleReceiver(tmp_path / "console.sock") as receiver:
        engine("create", "--console-socket", str(receiver.path), "--bundle", str(bundle), container_id, check=True)
        receiver.wait_master()  # the init sent it during create, before waiting for start
        assert receiver.name == "/dev/pts/ptmx"
        engine("start", container_id, check=True)
        values = interact(receiver)
    check_terminal_facts(values, SIZE)
    deadline = time.monotonic() + 10
    while engine.state(container_id)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    engine("delete", container_id, check=True)


def test_create_with_terminal_needs_a_console_socket(engine: Engine) -> None:
    bundle = terminal_bundle(engine, ["true"])
    result = engine("create", "--bundle", str(bundle), engine.new_id())
    assert result.returncode != 0
    assert console.CONSOLE_SOCKET_REQUIRED in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_console_socket_without_terminal_is_refused(engine: Engine, tmp_path: Path) -> None:
    bundle = engine.bundle(["true"])
    with ConsoleReceiver(tmp_path / "console.sock") as receiver:
        result = engine("create", "--console-socket", str(receiver.path), "--bundle", str(bundle), engine.new_id())
    assert result.returncode != 0
    assert console.CONSOLE_SOCKET_UNUSED in result.stderr


def test_run_relays_stdio_that_is_not_a_terminal(engine: Engine) -> None:
    """stdin and stdout are files: copied as they are, no raw mode, and consoleSize stays."""
    bundle = terminal_bundle(engine, ["sh", "-c", 'tty; stty size; read line; echo "GOT=$line"; exit 7'])
    result = engine("run", "--bundle", str(bundle), engine.new_id(), input="hello\n", text=True)
    lines = result.stdout.replace("\r\n", "\n").splitlines()
    assert "/dev/pts/0" in lines and "33 101" in lines and "GOT=hello" in lines, (result.stdout, result.stderr)
    assert result.returncode == 7, result.stderr


def test_run_attaches_the_callers_terminal(engine: Engine) -> None:
    """The caller's terminal is a pty we hold: raw while the container runs, its size wins over consoleSize,
    typing reaches the container, and the terminal is restored afterwards."""
    caller_master, caller = os.openpty()
    console.set_window_size(caller_master, 41, 132)
    before = termios.tcgetattr(caller)
    bundle = terminal_bundle(engine, ["sh", "-c", 'stty size; read line; echo "GOT=$line"'])
    container_id = engine.new_id()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [ENGINE, "--root", str(engine.root), "run", "--bundle", str(bundle), container_id],
            stdin=caller,
            stdout=caller,
            stderr=errors,
            start_new_session=True,
        )
        output = b""
        try:
            deadline = time.monotonic() + 20
            typed = False
            while process.poll() is None and time.monotonic() < deadline:
                if select.select([caller_master], [], [], 0.1)[0]:
                    output += os.read(caller_master, 4096)
                if not typed and b"41 132" in output:
                    os.write(caller_master, b"hello\r")  # Enter sends \r; the container's pty maps it to \n
                    typed = True
            while select.select([caller_master], [], [], 0.2)[0]:
                output += os.read(caller_master, 4096)
            assert process.wait(5) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
        after = termios.tcgetattr(caller)
    os.close(caller_master)
    os.close(caller)
    assert b"41 132" in output, (output, stderr)
    assert b"GOT=hello" in output, (output, stderr)
    assert after == before, "the caller's terminal was not restored"
