"""Messages for the user: one line on stderr, and with --log a copy in the log file, in runc's shapes.

containerd's runc shim and podman's conmon pass `--log FILE` (json for the shim) on every call and read the
file back when a command fails, so the file is created as soon as a command starts, as runc does, even when
nothing is logged. Each line has logrus's shape, which is what runc writes:

    text:  time="2026-12-01T22:16:19Z" level=debug msg="created the container's cgroups"
    json:  {"level":"debug","msg":"created the container's cgroups","time":"2026-12-01T22:16:19Z"}

Errors and warnings also go to stderr as `engine: ...`; debug lines (--debug) go to the log file, or to
stderr in the format above when there is none, as runc's do. `engine state` and `kill` pay for this on every
call: nothing but engine.paths is imported here, and a debug message without --debug costs one comparison.
"""

import posix  # not os: its import costs every command ~1 ms (engine/paths.py)
import sys
import time

from engine.paths import absolute

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
# Characters logrus's text formatter leaves unquoted in a value (its needsQuoting).
_BARE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def timestamp() -> str:
    """RFC 3339 to the second, UTC: logrus's default time format as runc writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def text_value(value: str) -> str:
    """A value as logrus's text formatter writes it: bare when it is a plain word, else quoted (Go's %q)."""
    if all(c in _BARE for c in value):
        return value
    out = []
    for c in value:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif c < " " or c == "\x7f":
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def format_line(level: str, msg: str, fmt: str) -> str:
    if fmt == "json":
        from state import jsonio  # the _json accelerator only: `import json` costs ~8 ms

        return jsonio.dumps({"level": level, "msg": msg, "time": timestamp()}) + "\n"
    return f"time={text_value(timestamp())} level={level} msg={text_value(msg)}\n"


def _to_stderr(line: str) -> None:
    # stderr may not be writable: containerd's runc shim gives a pod sandbox's runtime /dev/null opened
    # read-only as stdio (every write fails with EBADF). The message must still reach the log file, which is
    # what the shim reads back and reports; runc ignores such write errors too.
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        sys.stderr = open("/dev/null", "w")  # noqa: SIM115  # nothing more can be said there, even at exit


class Log:
    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False) -> None:
        self.path = absolute(path) if path else None  # `engine run` moves into the bundle
        self.fmt = fmt
        self.debugging = debug
        self.threshold = LEVELS["debug"] if debug else LEVELS["info"]
        if path:
            self._append(b"")  # runc creates the file whatever happens next; supervisors expect to find it

    def _append(self, data: bytes) -> None:
        try:
            fd = posix.open(self.path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC, 0o644)
        except OSError:
            return  # an unwritable log must not turn a good command into a failure
        try:
            if data:
                posix.write(fd, data)
        finally:
            posix.close(fd)

    def _write(self, level: str, msg: str, to_stderr: bool) -> None:
        if LEVELS[level] < self.threshold:
            return
        msg = " ".join(msg.split("\n"))
        if to_stderr:
            _to_stderr(f"engine: {msg}" if level == "error" else f"engine: {level}: {msg}")
        if self.path:
            self._append(format_line(level, msg, self.fmt).encode())

    def error(self, msg: str) -> None:
        self._write("error", msg, to_stderr=True)

    def warning(self, msg: str) -> None:
        self._write("warning", msg, to_stderr=True)

    def info(self, msg: str) -> None:
        self._write("info", msg, to_stderr=False)

    def debug(self, msg: str) -> None:
        """One step of a command, with --debug only: into the log file, or onto stderr without one."""
        if not self.debugging:
            return
        if self.path:
            self._write("debug", msg, to_stderr=False)
        else:
            line = format_line("debug", " ".join(msg.split("\n")), self.fmt)
            sys.stderr.write(line)
            sys.stderr.flush()
