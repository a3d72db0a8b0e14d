"""JSON for the hot paths, straight from the C accelerator (_json) that the json module wraps.

`import json` imports re (json.decoder and json.scanner compile regexes), ~8 ms, a quarter of what
`engine state` may cost. The scanner and encoder in _json need none of that. Output matches json.dumps:
compact (separators "," and ":") or, with indent, json.dumps(obj, indent=n) byte for byte; ASCII-escaped.

Why not orjson here: it parses a state.json ~3 µs faster but costs ~20 ms more to import, so a command that reads
one document (or a `list` of a thousand) is faster with this; bench/json_choice.py measures it (bench/README.md
has the numbers). The long-running readers (`engine events`) use orjson.

Loading _json itself (a shared library: its mapping, relocations and types) costs ~0.2-0.3 ms, more than a hot
command's whole state.json costs to read and write in Python. So a small document in the plain subset of JSON that
engine writes (objects, arrays, strings without escapes or control characters, integers, true, false, null) is read
and written here in Python (_plain_loads, _plain_dumps), and anything else (an escape, a float, an error to
report, a large document, or once _json is loaded anyway: accelerate()) goes to _json. The plain path only ever
gives what json gives, or steps aside: tests/unit/test_jsonio.py compares the two on generated documents.
"""

import sys

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


_WHITESPACE = " \t\n\r"
SMALL = 4096  # characters: a larger document is read by _json (Python's loop would cost more than loading it)
_accelerated: "tuple[Any, Any, Any] | None" = None  # _json's (scanner, compact encoder, string encoder), once loaded


def accelerate() -> "tuple[Any, Any, Any]":
    """Load _json's scanner and encoders (for many documents: `engine list`); every later call uses them."""
    global _accelerated
    if _accelerated is None:
        import _json

        encode = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ":", ",", False, False, False)
        _accelerated = (_json.make_scanner(_ScanContext()), encode, _json.encode_basestring_ascii)
    return _accelerated


def _plain_first() -> bool:
    """Whether to try the plain path: only while _json is not loaded (by us, or by another module: create's
    engine/spec/messages.py uses it), since once it is, it is faster for every document."""
    return _accelerated is None and "_json" not in sys.modules


def loads(data: str | bytes) -> "Any":
    """The value of a JSON document; JSONError (a ValueError) if it is not one. Bytes must be UTF-8."""
    text = data.decode() if isinstance(data, bytes) else data
    if _plain_first() and len(text) <= SMALL:
        value = _plain_loads(text)
        if value is not _NOT_PLAIN:
            return value
    scan = accelerate()[0]
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = scan(text, start)
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
        accelerate()[0](text, start)
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
        return _compact(value)
    out: list[str] = []
    _pretty(value, 0, " " * indent, out)
    return "".join(out)


def _compact(value: "Any") -> str:
    if _plain_first():
        out: list[str] = []
        try:
            _plain_dump(value, out)
            return "".join(out)
        except (_NotPlain, RecursionError):
            pass
    return "".join(accelerate()[1](value, 0))


def _string(text: str) -> str:
    if _plain_first() and text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return str(accelerate()[2](text))


def _pretty(value: "Any", level: int, unit: str, out: list[str]) -> None:
    if isinstance(value, dict) and value:
        inner = "\n" + unit * (level + 1)
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            out.append(("," if i else "") + inner + _string(str(key)) + ": ")
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
        out.append(_compact(value))


# ---- the plain subset, in Python ------------------------------------------------------------------------------


class _NotPlain(Exception):
    """Outside the plain subset (or not JSON at all): _json decides."""


_NOT_PLAIN: "Any" = object()
_DIGITS = frozenset("0123456789")
_CONSTANTS = (("true", True), ("false", False), ("null", None))


def _plain_loads(text: str) -> "Any":
    """The document's value if it is in the plain subset, else _NOT_PLAIN (also for anything invalid)."""
    try:
        value, end = _plain_value(text, _skip(text, 0))
    except (_NotPlain, IndexError, ValueError, RecursionError):
        return _NOT_PLAIN
    return value if _skip(text, end) == len(text) else _NOT_PLAIN


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    return i


def _plain_value(text: str, i: int) -> "tuple[Any, int]":
    c = text[i]
    if c == '"':
        return _plain_string(text, i)
    if c == "{":
        obj: dict[str, Any] = {}
        i = _skip(text, i + 1)
        if text[i] == "}":
            return obj, i + 1
        while True:
            if text[i] != '"':
                raise _NotPlain
            key, i = _plain_string(text, i)
            i = _skip(text, i)
            if text[i] != ":":
                raise _NotPlain
            obj[key], i = _plain_value(text, _skip(text, i + 1))
            i = _skip(text, i)
            if text[i] == "}":
                return obj, i + 1
            if text[i] != ",":
                raise _NotPlain
            i = _skip(text, i + 1)
    if c == "[":
        items: list[Any] = []
        i = _skip(text, i + 1)
        if text[i] == "]":
            return items, i + 1
        while True:
            item, i = _plain_value(text, i)
            items.append(item)
            i = _skip(text, i)
            if text[i] == "]":
                return items, i + 1
            if text[i] != ",":
                raise _NotPlain
            i = _skip(text, i + 1)
    for word, constant in _CONSTANTS:
        if text.startswith(word, i):
            return constant, i + len(word)
    # An integer: -?(0|[1-9][0-9]*), not followed by a fraction or an exponent (floats go to _json).
    digits = i + 1 if c == "-" else i
    end = digits
    while end < len(text) and text[end] in _DIGITS:
        end += 1
    if end == digits or (text[digits] == "0" and end > digits + 1) or text[end : end + 1] in (".", "e", "E"):
        raise _NotPlain
    return int(text[i:end]), end


def _plain_string(text: str, i: int) -> "tuple[str, int]":
    """The string whose opening quote is at i: plain when it has no escape and only printable ASCII."""
    end = text.index('"', i + 1)
    value = text[i + 1 : end]
    if "\\" in value or not (value.isascii() and value.isprintable()):
        raise _NotPlain  # escapes (and what JSON forbids unescaped: control characters) are _json's
    return value, end + 1


def _plain_dump(value: "Any", out: list[str]) -> None:
    """Append json.dumps(value, separators=(",", ":")) for a value of the plain subset; _NotPlain otherwise."""
    kind = type(value)
    if kind is str:
        if not (value.isascii() and value.isprintable()) or '"' in value or "\\" in value:
            raise _NotPlain
        out.append(f'"{value}"')
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is int:
        out.append(int.__repr__(value))
    elif kind is dict:
        out.append("{")
        for n, (key, item) in enumerate(value.items()):
            if type(key) is not str:
                raise _NotPlain  # json turns numbers and constants into keys: _json does it
            if n:
                out.append(",")
            _plain_dump(key, out)
            out.append(":")
            _plain_dump(item, out)
        out.append("}")
    elif kind is list:
        out.append("[")
        for n, item in enumerate(value):
            if n:
                out.append(",")
            _plain_dump(item, out)
        out.append("]")
    else:
        raise _NotPlain
