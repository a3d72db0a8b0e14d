"""One shared handle on libc, and the errno check every syscall wrapper uses."""

from __future__ import annotations

import os

from engine.linux import ffi

libc = ffi.CDLL(None, use_errno=True)


def check(result: int, what: str, path: str | None = None) -> int:
    """Raise OSError (with errno and the failing call named) when a libc call returned -1."""
    if result == -1:
        err = ffi.get_errno()
        message = f"{what}: {os.strerror(err)}"
        raise OSError(err, message, path) if path is not None else OSError(err, message)
    return result
