"""Messages for the user: one line on stderr, and with --log a copy in the log file.

With `--log FILE --log-format json` each message is a JSON line {"level", "msg", "time"}, the shape containerd
reads back from runc's log when a command fails.
"""

from __future__ import annotations

import os
import sys

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def _to_stderr(line: str) -> None:
    # stderr may not be writable: containerd's runc shim gives a pod sandbox's runtime /dev/null opened
    # read-only as stdio (every write fails with EBADF). The message must still reach the log file, which is
    # what the shim reads back and reports; runc ignores such write errors too.
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115  # nothing more can be said there, even at exit


class Log:
    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False) -> None:
        self.path = path
        self.fmt = fmt
        self.threshold = LEVELS["debug"] if debug else LEVELS["info"]

    def _write(self, level: str, msg: str, to_stderr: bool) -> None:
        if LEVELS[level] < self.threshold:
            return
        msg = " ".join(msg.split("\n"))
        if to_stderr:
            _to_stderr(f"engine: {msg}" if level == "error" else f"engine: {level}: {msg}")
        if not self.path:
            return
        from state import jsonio
        from state.record import now_rfc3339

        time = now_rfc3339()
        if self.fmt == "json":
            line = jsonio.dumps({"level": level, "msg": msg, "time": time}) + "\n"
        else:
            line = f'time="{time}" level={level} msg="{msg}"\n'
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            return  # an unwritable log must not turn a good command into a failure
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def error(self, msg: str) -> None:
        self._write("error", msg, to_stderr=True)

    def warning(self, msg: str) -> None:
        self._write("warning", msg, to_stderr=True)

    def info(self, msg: str) -> None:
        self._write("info", msg, to_stderr=False)

    def debug(self, msg: str) -> None:
        self._write("debug", msg, to_stderr=self.threshold <= LEVELS["debug"] and not self.path)
