"""JSON for the hot paths, straight from the C accelerator (_json) that the json module wraps.

`import json` imports re (json.decoder and json.scanner compile regexes), ~8 ms, a quarter of what
`engine state` may cost. The scanner and encoder in _json need none of that. Output matches json.dumps:
compact (separators "," and ":") or, with indent, json.dumps(obj, indent=n) byte for byte; ASCII-escaped.

Why not orjson here: it parses a state.json ~3 µs faster but costs ~20 ms more to import, so a command that reads
one document (or a `list` of a thousand) is faster with this; bench/json_choice.py measures it (bench/README.md
has the numbers). The long-running readers (`engine events`) use orjson.
"""

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class JSONError(ValueError):
    """Not JSON: `reason` says why, `position` is the index in the text where it went wrong (None: unknown)."""

    def __init__(self, reason: str, position: int | None) -> None:
        where = f" at character {position}" if position is not None else ""
        super().__init__(f"invalid JSON{where}: {reason}")
        self.reason = reason
        self.position = position


class _ScanContext:
    # What json.scanner.make_scanner reads off a JSONDecoder.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> "Any":
        raise JSONError(f"{name} is not valid JSON", None)


_scan = _json.make_scanner(_ScanContext())
_encode_compact = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ":", ",", False, False, False)
_WHITESPACE = " \t\n\r"


def loads(data: str | bytes) -> "Any":
    """The value of a JSON document; JSONError (a ValueError) if it is not one. Bytes must be UTF-8."""
    text = data.decode() if isinstance(data, bytes) else data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as err:
        raise JSONError("expecting a value", err.value) from None
    except SystemError:
        # The scanner reports most errors with json.decoder.JSONDecodeError, but only finds that class when
        # json.decoder is imported already (else: "returned NULL without setting an exception"). Only now, on
        # the error path, is it worth importing (with re); the second scan tells where and why.
        import json.decoder  # noqa: F401

        return _rescan(text, start)
    except JSONError:
        raise
    except RecursionError:
        raise JSONError("nested too deeply", None) from None
    except ValueError as err:
        raise _error_of(err) from None
    rest = len(text) - len(text[end:].lstrip(_WHITESPACE))
    if rest < len(text):
        raise JSONError("unexpected content after the document", rest)
    return value


def _rescan(text: str, start: int) -> "Any":
    try:
        _scan(text, start)
    except StopIteration as err:
        raise JSONError("expecting a value", err.value) from None
    except ValueError as err:
        raise _error_of(err) from None
    raise JSONError("unreadable", None)  # the first scan failed, so the second cannot succeed


def _error_of(err: ValueError) -> JSONError:
    # json.decoder.JSONDecodeError knows where and why; int() of a 5000-digit number only says why.
    position = getattr(err, "pos", None)
    message = getattr(err, "msg", None) or str(err).partition(":")[0]
    message = message.removesuffix(" at")  # "Invalid control character at": the position is given apart
    return JSONError(message[:1].lower() + message[1:], position)


def dumps(value: "Any", indent: int | None = None) -> str:
    if indent is None:
        return "".join(_encode_compact(value, 0))
    out: list[str] = []
    _pretty(value, 0, " " * indent, out)
    return "".join(out)


def _pretty(value: "Any", level: int, unit: str, out: list[str]) -> None:
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
