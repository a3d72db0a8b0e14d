"""engine.cli.exit_quickly: the `engine` command ends without the interpreter's teardown, but never loses
output, an atexit callback (the console relay restores the terminal with one) or a running thread's work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A module-level object whose finalizer only the interpreter's teardown runs: it tells whether teardown happened.
PRELUDE = f"""
import os, sys
sys.path.insert(0, {str(REPO)!r})
from engine.cli import exit_quickly

class Teardown:
    def __del__(self):
        os.write(2, b"teardown")

marker = Teardown()
"""


def run(body: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-S", "-I", "-c", PRELUDE + body]  # started as the engine command starts
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def test_skips_teardown_keeps_output_and_code() -> None:
    result = run("print('out', end=''); sys.stderr.write('err'); exit_quickly(3)")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out", "err")  # flushed, no teardown


def test_an_atexit_callback_still_runs() -> None:
    result = run("import atexit; atexit.register(lambda: print('restored', end='')); exit_quickly(0)")
    assert (result.returncode, result.stdout) == (0, "restored")
    assert "teardown" in result.stderr


def test_a_thread_that_is_no_daemon_still_finishes() -> None:
    body = (
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), print('done', end=''))).start()\n"
        "exit_quickly(0)\n"
    )
    result = run(body)
    assert (result.returncode, result.stdout) == (0, "done")


def test_a_reader_that_went_away_takes_the_ordinary_exit() -> None:
    # The flush fails (EPIPE): Python's own exit reports that as it always has (status 120), not a silent 0.
    # (-I as the engine command starts: PYTHONUNBUFFERED, set on this machine, would make the write itself fail.)
    body = "import signal, time; signal.signal(signal.SIGPIPE, signal.SIG_IGN); time.sleep(0.5)\n"
    body += "sys.stdout.write('x' * 10); exit_quickly(0)\n"
    command = [sys.executable, "-S", "-I", "-c", PRELUDE + body]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 120, stderr
    assert "BrokenPipeError" in stderr


def test_a_profiler_still_gets_its_report(tmp_path: Path) -> None:
    # cProfile (and coverage, a tracer) write their report at the ordinary exit.
    profile = tmp_path / "prof"
    script = tmp_path / "script.py"
    script.write_text(PRELUDE + "exit_quickly(0)\n")
    command = [sys.executable, "-S", "-I", "-m", "cProfile", "-o", str(profile), str(script)]
    assert subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    assert profile.stat().st_size > 0
