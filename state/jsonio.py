"""JSON for the hot paths, straight from the C accelerator (_json) that the json module wraps.

`import json` imports re (json.decoder and json.scanner compile regexes), ~8 ms, a quarter of what
`engine state` may cost. The scanner and encoder in _json need none of that. Output matches json.dumps:
compact (separators "," and ":") or, with indent, json.dumps(obj, indent=n) byte for byte; ASCII-escaped.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _ScanContext:
    # What json.scanner.make_scanner reads off a JSONDecoder.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")


_scan = _json.make_scanner(_ScanContext())
_encode_compact = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ":", ",", False, False, False)
_WHITESPACE = " \t\n\r"


def loads(data: str | bytes) -> Any:
    text = data.decode() if isinstance(data, bytes) else data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as err:
        raise ValueError(f"invalid JSON at character {err.value}") from None
    except (SystemError, RecursionError):
        # Some malformed inputs (an unterminated string) make the bare scanner fail without the error json.decoder
        # would have set up; too deep a nesting exhausts the stack. Either way: not valid JSON, one line.
        raise ValueError("invalid JSON (malformed or nested too deeply)") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"invalid JSON: extra data at character {end}")
    return value


def dumps(value: Any, indent: int | None = None) -> str:
    if indent is None:
        return "".join(_encode_compact(value, 0))
    out: list[str] = []
    _pretty(value, 0, " " * indent, out)
    return "".join(out)


def _pretty(value: Any, level: int, unit: str, out: list[str]) -> None:
    if isinstance(value, dict) and value:
        inner = "\n" + unit * (level + 1)
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            out.append(("," if i else "") + inner + _json.encode_basestring_ascii(str(key)) + ": ")
            _pretty(item, level + 1, unit, out)
        out.append("\n" + unit * level + "}")
    elif isinstance(value, list | tuple) and value:
        inner = "\n" + unit * (level + 1)
        out.append("[")
        for i, item in enumerate(value):
            out.append(("," if i else "") + inner)
            _pretty(item, level + 1, unit, out)
        out.append("\n" + unit * level + "]")
    else:
        out.append("".join(_encode_compact(value, 0)))
