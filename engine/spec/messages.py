"""The one-line message for a rejected config.json / process.json / resources document.

Both validators report errors as pydantic's error dicts (`type`, `loc`, `input`, `ctx`): the pydantic models
through ValidationError.errors(), the compiled validator (engine/spec/compiled.py) by building the same dicts.
This module turns them into the single line the CLI prints, so both give the same message by construction:

    config.json: linux.resources.memory.limit: expected an integer, got "1g"
    config.json: process.args: must not be empty (+2 more)

pydantic's own rendering (input_value=..., documentation URLs, multi-line listings) is never shown. No pydantic
(nor json, nor re) is imported here.
"""

from __future__ import annotations

import _json

from engine.spec.rules import SpecValueError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

# Values quoted in messages are cut to this many characters, so one huge value cannot flood the terminal.
MAX_VALUE_CHARS = 60

# Compact JSON without escaping non-ASCII text (as the value appeared in the file); NaN and infinities allowed.
_encode = _json.make_encoder(None, None, _json.encode_basestring, None, ":", ",", False, False, True)  # type: ignore[arg-type]  # the C encoder takes None for no markers/default


def format_errors(errors: Sequence[dict[str, Any]], filename: str) -> str:
    """The message for a list of error dicts: the first error, plus how many more there are."""
    if not errors:  # never produced by either validator; keep the message well-formed anyway
        return f"{filename}: invalid"
    path, reason = describe(errors[0])
    message = f"{filename}: {path}: {reason}" if path else f"{filename}: {reason}"
    if len(errors) > 1:
        message += f" (+{len(errors) - 1} more)"
    return one_line(message)


def describe(error: dict[str, Any]) -> tuple[str, str]:
    """(JSON path, reason) for one error dict."""
    loc: tuple[str | int, ...] = tuple(error.get("loc", ()))
    kind: str = error.get("type", "")
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    got = f", got {render(value)}"

    cause = ctx.get("error")
    if isinstance(cause, SpecValueError):
        return json_path(loc + cause.subpath), cause.message
    if kind in ("value_error", "assertion_error"):
        return json_path(loc), str(cause) if cause is not None else error.get("msg", "invalid value")

    if kind == "missing":
        reason = "is required"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        reason = "expected an integer" + got
    elif kind in ("string_type", "string_unicode"):
        reason = "expected a string" + got
    elif kind in ("bool_type", "bool_parsing"):
        reason = "expected a boolean" + got
    elif kind in ("list_type", "tuple_type", "iterable_type"):
        reason = "expected an array" + got
    elif kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        reason = "expected an object" + got
    elif kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", '"')
        reason = f"must be one of {expected}{got}"
    elif kind == "string_pattern_mismatch":
        reason = f"must match {ctx.get('pattern')}{got}"
    elif kind == "greater_than_equal":
        reason = f"must be at least {ctx.get('ge')}{got}"
    elif kind == "less_than_equal":
        reason = f"must be at most {ctx.get('le')}{got}"
    elif kind == "too_short":
        n = ctx.get("min_length", 1)
        reason = "must not be empty" if n == 1 else f"must have at least {n} entries"
    else:
        # Anything not mapped above: pydantic's short message is fine, its long rendering is not.
        reason = str(error.get("msg", "invalid value"))
    return json_path(loc), reason


def json_path(loc: tuple[str | int, ...]) -> str:
    """`linux.resources.devices[0].major`; keys that are not identifiers (sysctl and annotation names with
    dots, rdma device names with dashes...) are written as ["key"] so the path stays unambiguous."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{render(part)}]"
    return out


def render(value: Any) -> str:
    """A value as JSON, shortened; falls back to repr for anything JSON cannot express."""
    try:
        text = "".join(_encode(value, 0))
    except (TypeError, ValueError):
        text = repr(value)
    except RecursionError:
        text = "(a value nested too deeply to show)"
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 3] + "..."
    return text


def one_line(message: str) -> str:
    # The CLI contract is one line per error; JSON rendering already escapes newlines in values, this catches
    # any that slip in from exception texts.
    return " ".join(message.splitlines())
