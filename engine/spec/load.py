"""Reading config.json / process.json into validated models, with one-line errors.

Every failure is an engine.errors.ConfigError whose message is a single line naming the file, the JSON
path and the reason, e.g.

    config.json: linux.resources.memory.limit: expected an integer, got "1g"
    config.json: process.args: must not be empty (+2 more)
    config.json: invalid JSON at line 3 column 5: trailing comma is not allowed
    config.json: not found in bundle /run/bundles/x

pydantic's own rendering (input_value=..., documentation URLs, multi-line listings) is never shown: the
CLI prints the message as-is on stderr.
"""

import inspect
import os
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from engine.errors import ConfigError
from engine.spec.models import Process, Resources, Spec, SpecValueError

CONFIG_FILENAME = "config.json"

M = TypeVar("M", bound=BaseModel)

# Values quoted in messages are cut to this many characters, so one huge value cannot flood the terminal.
_MAX_VALUE_CHARS = 60


def load_config(path: str, *, check_oci_version: bool = True) -> Spec:
    """Read and validate a bundle's config.json. `path` is the file, or the bundle directory itself."""
    if os.path.isdir(path):
        path = os.path.join(path, CONFIG_FILENAME)
    name = os.path.basename(path)
    bundle = os.path.dirname(os.path.abspath(path))
    data = _read(path, name, not_found=f"{name}: not found in bundle {bundle}")
    return parse_config(data, name, check_oci_version=check_oci_version)


def parse_config(data: bytes, filename: str = CONFIG_FILENAME, *, check_oci_version: bool = True) -> Spec:
    """Validate config.json content. `filename` only labels error messages.

    check_oci_version=False accepts any SemVer ociVersion (for schema-conformance checks, not for running).
    """
    obj = _parse_json(data, filename)
    return _validate(Spec, obj, filename, context={"check_oci_version": check_oci_version})


def load_process(path: str) -> Process:
    """Read and validate the process.json of `exec --process`; errors are labelled with `path` as given."""
    data = _read(path, path, not_found=f"{path}: no such file")
    return parse_process(data, path)


def parse_process(data: bytes, filename: str = "process.json") -> Process:
    """Validate a process object (config.json's "process" on its own); JSON paths are relative to it."""
    return _validate(Process, _parse_json(data, filename), filename)


def load_resources(path: str) -> Resources:
    """Read and validate the linux.resources object of `update --resources`."""
    data = _read(path, path, not_found=f"{path}: no such file")
    return _validate(Resources, _parse_json(data, path), path)


def validate_config(obj: Any, filename: str = CONFIG_FILENAME, *, check_oci_version: bool = True) -> Spec:
    """Validate an already-decoded JSON object (e.g. a generated default config) as config.json."""
    return _validate(Spec, obj, filename, context={"check_oci_version": check_oci_version})


def format_validation_error(err: ValidationError, filename: str) -> str:
    """The one-line message for a pydantic ValidationError: first error, plus how many more there are."""
    errors = err.errors(include_url=False)
    if not errors:  # not produced by pydantic in practice; keep the message well-formed anyway
        return f"{filename}: invalid"
    path, reason = _describe(errors[0])
    message = f"{filename}: {path}: {reason}" if path else f"{filename}: {reason}"
    if len(errors) > 1:
        message += f" (+{len(errors) - 1} more)"
    return _one_line(message)


# --------------------------------------------------------------------------------------------------


def _read(path: str, label: str, *, not_found: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ConfigError(not_found) from None
    except OSError as e:
        raise ConfigError(f"{label}: cannot read: {e.strerror or e}") from None


def _parse_json(data: bytes, filename: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise ConfigError(_one_line(f"{filename}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}")) from None


def _validate(model: type[M], obj: Any, filename: str, context: dict[str, Any] | None = None) -> M:
    try:
        # by_name=False: a JSON document is matched by its camelCase keys only, so a stray "cgroups_path"
        # key is an unknown property (ignored), not a synonym of "cgroupsPath".
        return model.model_validate(obj, context=context, **_BY_ALIAS_ONLY)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, filename)) from None


def _by_alias_only() -> dict[str, bool]:
    # model_validate(by_alias=, by_name=) exists from pydantic 2.11 on; older versions match names too.
    params = inspect.signature(BaseModel.model_validate).parameters
    return {"by_alias": True, "by_name": False} if "by_name" in params else {}


_BY_ALIAS_ONLY = _by_alias_only()


def _describe(error: Any) -> tuple[str, str]:
    """(JSON path, reason) for one pydantic error dict."""
    loc: tuple[str | int, ...] = tuple(error.get("loc", ()))
    kind: str = error.get("type", "")
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    got = f", got {_render(value)}"

    cause = ctx.get("error")
    if isinstance(cause, SpecValueError):
        return _json_path(loc + cause.subpath), cause.message
    if kind in ("value_error", "assertion_error"):
        return _json_path(loc), str(cause) if cause is not None else error.get("msg", "invalid value")

    if kind == "missing":
        reason = "is required"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        if isinstance(value, float) and value.is_integer() and abs(value) >= 2**63:
            # orjson decodes integers beyond 64 bits as floats; say what actually went wrong.
            reason = f"integer out of range, got {_render(value)}"
        else:
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
    return _json_path(loc), reason


def _json_path(loc: tuple[str | int, ...]) -> str:
    """`linux.resources.devices[0].major`; keys that are not identifiers (sysctl and annotation names
    with dots, rdma device names with dashes...) are written as ["key"] so the path stays unambiguous."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{_render(part)}]"
    return out


def _render(value: Any) -> str:
    """A value as JSON, shortened; falls back to repr for anything JSON cannot express."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return text


def _one_line(message: str) -> str:
    # The CLI contract is one line per error; JSON rendering already escapes newlines in values, this
    # catches any that slip in from exception texts.
    return " ".join(message.splitlines())
