"""Run a function in a forked child (to change its credentials, capabilities, seccomp filter, mounts...)
and bring its result back as JSON: shared by the unit tests of engine/linux and engine/setup."""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Callable
from typing import Any


def run_in_child_with_status(fn: Callable[[], Any]) -> tuple[dict[str, Any], int]:
    """Fork; the child runs fn() and writes {"ok": result} or {"error": ..., "errno": ...} as JSON to a pipe.
    Returns that and the child's wait status (a seccomp KILL action, say, shows there)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(r)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a SIGSYS must not dump core
            try:
                out: dict[str, Any] = {"ok": fn()}
            except BaseException as err:
                out = {"error": f"{type(err).__name__}: {err}", "errno": getattr(err, "errno", None)}
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return (json.loads(data) if data else {}), status


def run_in_child(fn: Callable[[], Any]) -> dict[str, Any]:
    return run_in_child_with_status(fn)[0]
