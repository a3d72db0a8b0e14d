"""A hook that logs each lifecycle transition as one JSON line: {time, stage, id, status, pid}.

    python -m hooks.transition_logger --log FILE [--stage STAGE]

The hook reads the container state from stdin (config.md: the runtime passes it to every hook). The stage
comes from --stage, else from $ENGINE_HOOK_STAGE (set it in the hook's "env"), else "unknown": the runtime
does not tell a hook which stage it runs in. Each line is appended with one write() under an exclusive flock,
so hooks of several containers can share one log. Stdlib only (json, not orjson): a hook pays Python's
start-up on every run, so it imports as little as it can.

Example config.json entry:
    {"path": "/usr/bin/python3", "args": ["python3", "-m", "hooks.transition_logger", "--log",
     "/var/log/engine-transitions.jsonl", "--stage", "poststop"], "env": ["PYTHONPATH=/opt/engine"]}
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import sys

USAGE = "usage: python -m hooks.transition_logger --log FILE [--stage STAGE]"


def parse_args(argv: list[str]) -> tuple[str, str]:
    """(log path, stage) from argv; raises ValueError with a usage message. argparse would cost more to
    import than this whole hook."""
    log = None
    stage = os.environ.get("ENGINE_HOOK_STAGE") or "unknown"
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        if name not in ("--log", "--stage"):
            raise ValueError(f"unknown argument {arg!r}; {USAGE}")
        if not eq:
            following = next(args, None)
            if following is None:
                raise ValueError(f"{name} needs a value; {USAGE}")
            value = following
        if name == "--log":
            log = value
        else:
            stage = value
    if not log:
        raise ValueError(f"--log is required; {USAGE}")
    return log, stage


def record(state: dict[str, object], stage: str) -> dict[str, object]:
    return {
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "stage": stage,
        "id": state.get("id"),
        "status": state.get("status"),
        "pid": state.get("pid"),
    }


def append_line(path: str, entry: dict[str, object]) -> None:
    line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    try:
        log, stage = parse_args(sys.argv[1:] if argv is None else argv)
        state = json.loads(sys.stdin.buffer.read() or b"{}")
        if not isinstance(state, dict):
            raise ValueError("the state on stdin is not a JSON object")
        append_line(log, record(state, stage))
    except (ValueError, OSError) as err:
        print(f"transition_logger: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
