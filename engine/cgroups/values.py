"""Reading linux.resources values: typed fields with one-line errors that name the JSON path.

The config was validated already (engine/spec); these guard `engine update` documents and callers that build the
dict by hand, and encode runc's readings ("0 is unset" for the fields whose Go type cannot tell absent from 0).
"""

from __future__ import annotations

from engine.cgroups.fs import fail, jpath

TYPE_CHECKING = False  # typing costs ~8 ms at import; annotations here are strings
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


def number(section: Mapping[str, Any], key: str, where: str) -> int | None:
    """An optional integer field."""
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(jpath(where, key), f"expected an integer, got {value!r}")
    return value


def section(resources: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    """An optional object field ({} when absent)."""
    value = resources.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(jpath(where, key), f"expected an object, got {value!r}")
    return value


def byte_limit(mem: Mapping[str, Any], key: str, where: str) -> int | None:
    """memory limit/swap/reservation: -1 is unlimited, 0 leaves the value alone (runc treats 0 as unset), else
    a byte count."""
    value = number(mem, key, where)
    if value is not None and value < -1:
        raise fail(jpath(where, key), f"{value} is neither -1 (unlimited) nor a byte count")
    return None if value == 0 else value


def device_node(dev: Mapping[str, Any], where: str) -> str:
    """The "major:minor" of a blockIO device entry (both REQUIRED)."""
    numbers = []
    for key in ("major", "minor"):
        value = number(dev, key, where)
        if value is None or value < 0:
            raise fail(jpath(where, key), "required, a device number")
        numbers.append(str(value))
    return ":".join(numbers)
