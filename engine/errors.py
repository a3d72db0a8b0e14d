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
