"""Container ids: what runc accepts, and nothing that could name a path outside --root."""

from engine.errors import EngineError

MAX_ID_LENGTH = 1024
# runc's rule (Go's ^[\w+-\.]+$, ASCII): letters, digits and _ + - . ; never "." or ".." alone (those would
# name a directory above). A set, not a regex: `import re` costs milliseconds on every command.
_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


class InvalidId(EngineError):
    pass


def validate_id(container_id: str) -> str:
    if not container_id:
        raise InvalidId("container id must not be empty")
    if len(container_id) > MAX_ID_LENGTH:
        raise InvalidId(f"container id is {len(container_id)} characters long, longer than {MAX_ID_LENGTH}")
    if "/" in container_id or container_id in (".", "..") or not _ALLOWED.issuperset(container_id):
        raise InvalidId(f"invalid container id {container_id!r}: use letters, digits and _ + - . only")
    return container_id
