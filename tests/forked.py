"""Run a function in a forked child (to change its credentials, capabilities, seccomp filter, mounts...)
and bring its result back as JSON: shared by the unit tests of engine/linux and engine/setup."""

from __future__ import annotations

import ctypes
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


CAP_SYS_RESOURCE = 24  # capabilities(7)
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_LOWER = 47, 3
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def drop_capability(number: int = CAP_SYS_RESOURCE) -> None:
    """In a child (forked, or a subprocess's preexec_fn): lose one capability from every set, so that a machine
    whose root holds it behaves like one whose root does not (this one lacks CAP_SYS_RESOURCE; most do not).
    Done with raw prctl/capset: not with the engine code that the tests judge."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_CAPBSET_DROP, number, 0, 0, 0) != 0 and ctypes.get_errno() != 22:  # EINVAL: not known
        raise OSError(ctypes.get_errno(), f"PR_CAPBSET_DROP {number}")
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_LOWER, number, 0, 0)
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # two struct __user_cap_data_struct: effective, permitted, inheritable
    if libc.capget(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    for field in range(3):
        data[number // 32 * 3 + field] &= ~(1 << number % 32)
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
