"""Errors a user sees: each one is printed as a single line on stderr, and the command exits non-zero."""


class EngineError(Exception):
    """Any failure the CLI reports to the user; str(err) is the whole one-line message."""

    exit_code = 1


class ConfigError(EngineError):
    """config.json (or process.json) is invalid; the message names the file, the JSON path and the reason."""


class ContainerNotFound(EngineError):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id!r} does not exist")


class InvalidState(EngineError):
    """An operation that the container's current status does not allow (runtime.md: it has no effect)."""


def one_line(err: BaseException) -> str:
    """The line a user sees for an error raised in engine's own code (its message) or by the kernel (the reason
    and the file it names); anything else is a bug, shown as such."""
    if isinstance(err, OSError):
        text = err.strerror or str(err)
        return f"{text}: {err.filename}" if err.filename and str(err.filename) not in text else text
    if isinstance(err, EngineError | ValueError):
        return str(err)
    return repr(err)


class suppress:
    """contextlib.suppress without contextlib: the create path (and the container's init, which cannot import
    after pivot_root) would pay ~1-2 ms to import contextlib, functools and types for it."""

    __slots__ = ("_kinds",)

    def __init__(self, *kinds: type[BaseException]) -> None:
        self._kinds = kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, value: object, traceback: object) -> bool:
        return kind is not None and issubclass(kind, self._kinds)
