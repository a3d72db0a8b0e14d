"""engine.linux.proctitle: a forked interpreter renames itself in comm and in /proc/<pid>/cmdline."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from engine.linux import proctitle


def test_a_forked_child_shows_its_new_name() -> None:
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(done_w)
            ok = proctitle.set_title(["engine", "init", "c-1234"])
            os.write(ready_w, b"1" if ok else b"0")
            os.read(done_r, 1)  # stay alive while the parent looks
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        assert os.read(ready_r, 1) == b"1"
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        comm = Path(f"/proc/{pid}/comm").read_text()
        ps = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True).stdout
    finally:
        os.close(done_w)
        os.close(ready_r)
        os.waitpid(pid, 0)
    # The old block is longer than the title: what is left of it reads as NULs, never as the old arguments.
    assert cmdline.rstrip(b"\0").split(b"\0") == [b"engine", b"init", b"c-1234"]
    assert set(cmdline[len(b"engine\0init\0c-1234") :]) == {0}
    assert comm == "engine init c-1\n"  # comm holds 15 bytes
    assert ps.strip() == "engine init c-1234"


def test_the_argv_area_is_found() -> None:
    area = proctitle.argv_area()
    assert area is not None
    start, end = area
    assert end - start == len(Path("/proc/self/cmdline").read_bytes())
