"""config.json / process.json / resources documents as the runtime reads them: validated JSON objects (dicts).

What `engine create`, `exec --process` and `update --resources` call. The verdict, the output and the error
message are those of the pydantic models in engine/spec/models.py (the only definition of a valid document):
the checking is done by engine/spec/compiled.py, generated from those models, so that these commands import
neither pydantic nor its dependencies (~100 ms before a single container is created). The output is what
`Model.model_validate(...).model_dump(by_alias=True, exclude_none=True)` gives. engine.spec.load has the
same functions returning the models themselves, for tools and tests.

Every failure is an engine.errors.ConfigError whose message is a single line naming the file, the JSON path
and the reason, e.g.

    config.json: linux.resources.memory.limit: expected an integer, got "1g"
    config.json: invalid JSON at line 3 column 5: expecting property name enclosed in double quotes
    config.json: not found in bundle /run/bundles/x

JSON is parsed by the C scanner behind the json module (not orjson, whose import costs more than parsing a
config; not `json`, which imports re): see state/jsonio.py.
"""

from __future__ import annotations

import os

from engine.errors import ConfigError
from engine.spec import compiled
from state import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from engine.spec.typed import Process, Resources, Spec

CONFIG_FILENAME = "config.json"


def load_config(path: str, *, check_oci_version: bool = True) -> Spec:
    """Read and validate a bundle's config.json. `path` is the file, or the bundle directory itself."""
    data, name = read_config(path)
    return parse_config(data, name, check_oci_version=check_oci_version)


def parse_config(data: bytes, filename: str = CONFIG_FILENAME, *, check_oci_version: bool = True) -> Spec:
    """Validate config.json content. `filename` only labels error messages.

    check_oci_version=False accepts any SemVer ociVersion (for schema-conformance checks, not for running).
    """
    return validate_config(parse_json(data, filename), filename, check_oci_version=check_oci_version)


def validate_config(obj: Any, filename: str = CONFIG_FILENAME, *, check_oci_version: bool = True) -> Spec:
    """Validate an already-decoded JSON object (e.g. a generated default config) as config.json."""
    config: Spec = _checked(compiled.validate_spec(obj, {"check_oci_version": check_oci_version}), filename)
    return config


def load_process(path: str) -> Process:
    """Read and validate the process.json of `exec --process`; errors are labelled with `path` as given."""
    return parse_process(read_file(path, path, not_found=f"{path}: no such file"), path)


def parse_process(data: bytes, filename: str = "process.json") -> Process:
    """Validate a process object (config.json's "process" on its own); JSON paths are relative to it."""
    process: Process = _checked(compiled.validate_process(parse_json(data, filename), {}), filename)
    return process


def load_resources(path: str) -> Resources:
    """Read and validate the linux.resources object of `update --resources` ("-": standard input)."""
    data, label = read_resources(path)
    resources: Resources = _checked(compiled.validate_resources(parse_json(data, label), {}), label)
    return resources


# --------------------------------------------------------------------------------------------------
# Shared with engine.spec.load, so that both report unreadable files and broken JSON alike.


def read_config(path: str) -> tuple[bytes, str]:
    """config.json's bytes and the name its messages use; `path` is the file, or the bundle directory itself."""
    if os.path.isdir(path):
        path = os.path.join(path, CONFIG_FILENAME)
    name = os.path.basename(path)
    bundle = os.path.dirname(os.path.abspath(path))
    return read_file(path, name, not_found=f"{name}: not found in bundle {bundle}"), name


def read_resources(path: str) -> tuple[bytes, str]:
    """`update --resources` input ("-": standard input) and the label its messages use."""
    label = "--resources (standard input)" if path == "-" else path
    return read_file(path, label, not_found=f"{path}: no such file"), label


def read_file(path: str, label: str, *, not_found: str) -> bytes:
    """The file's bytes; "-" is standard input, read from fd 0 itself (as runc reads os.Stdin): reopening
    /dev/stdin by path fails with ENXIO when a supervisor hands us a socket as stdin."""
    try:
        if path == "-":
            with open(0, "rb", closefd=False) as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ConfigError(not_found) from None
    except OSError as e:
        raise ConfigError(f"{label}: cannot read: {e.strerror or e}") from None


def parse_json(data: bytes, filename: str) -> Any:
    """The decoded document; ConfigError naming the line and column of the first thing that is not JSON."""
    try:
        text = data.decode()
    except UnicodeDecodeError as e:
        raise ConfigError(f"{filename}: invalid JSON: not UTF-8 (byte {e.start})") from None
    try:
        value = jsonio.loads(text)
    except jsonio.JSONError as e:
        where = ""
        if e.position is not None:
            line = text.count("\n", 0, e.position) + 1
            column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
            where = f" at line {line} column {column}"
        from engine.spec.messages import one_line  # the messages only for a document that fails (~0.1 ms)

        raise ConfigError(one_line(f"{filename}: invalid JSON{where}: {e.reason}")) from None
    if text.find("\\u") >= 0:
        _refuse_lone_surrogates(value, filename)
    return value


def _refuse_lone_surrogates(value: Any, filename: str) -> None:
    # JSON can spell a lone UTF-16 surrogate (\ud800) that is no character at all; such a string cannot be
    # encoded back to UTF-8 for a path, an argument or a message. Only \u escapes can produce one.
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            todo.extend(item)
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, str) and not item.isascii():
            try:
                item.encode()
            except UnicodeEncodeError:
                raise ConfigError(f"{filename}: invalid JSON: a string holds a lone UTF-16 surrogate") from None


def _checked(result: tuple[dict[str, Any] | None, list[tuple[Any, ...]]], filename: str) -> Any:
    """The validated document (Any: the caller names its TypedDict, engine/spec/typed.py, whose agreement with
    the compiled validator's output tests/unit/test_spec_typed.py checks); ConfigError if invalid."""
    output, errors = result
    if errors or output is None:
        from engine.spec.messages import format_errors  # only for a document that fails (~0.1 ms of create)

        raise ConfigError(format_errors(compiled.error_dicts(errors), filename))
    return output
