"""config.json / process.json / resources read into the pydantic models, with one-line errors.

For tools and tests that want the models themselves. The runtime (create, run, `exec --process`, `update
--resources`) uses engine.spec.document instead: the same functions returning the validated JSON objects,
checked by the compiled form of these models without importing pydantic. Both read files and parse JSON with
the same code (engine.spec.document) and word errors with the same code (engine.spec.messages), so a document
gets the same message from either:

    config.json: linux.resources.memory.limit: expected an integer, got "1g"
    config.json: process.args: must not be empty (+2 more)
    config.json: invalid JSON at line 3 column 5: expecting property name enclosed in double quotes
    config.json: not found in bundle /run/bundles/x
"""

import inspect
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from engine.errors import ConfigError
from engine.spec.document import CONFIG_FILENAME, parse_json, read_config, read_file, read_resources
from engine.spec.messages import format_errors
from engine.spec.models import Process, Resources, Spec

M = TypeVar("M", bound=BaseModel)


def load_config(path: str, *, check_oci_version: bool = True) -> Spec:
    """Read and validate a bundle's config.json. `path` is the file, or the bundle directory itself."""
    data, name = read_config(path)
    return parse_config(data, name, check_oci_version=check_oci_version)


def parse_config(data: bytes, filename: str = CONFIG_FILENAME, *, check_oci_version: bool = True) -> Spec:
    """Validate config.json content. `filename` only labels error messages.

    check_oci_version=False accepts any SemVer ociVersion (for schema-conformance checks, not for running).
    """
    obj = parse_json(data, filename)
    return _validate(Spec, obj, filename, context={"check_oci_version": check_oci_version})


def load_process(path: str) -> Process:
    """Read and validate the process.json of `exec --process`; errors are labelled with `path` as given."""
    data = read_file(path, path, not_found=f"{path}: no such file")
    return parse_process(data, path)


def parse_process(data: bytes, filename: str = "process.json") -> Process:
    """Validate a process object (config.json's "process" on its own); JSON paths are relative to it."""
    return _validate(Process, parse_json(data, filename), filename)


def load_resources(path: str) -> Resources:
    """Read and validate the linux.resources object of `update --resources`."""
    data, label = read_resources(path)
    return _validate(Resources, parse_json(data, label), label)


def validate_config(obj: Any, filename: str = CONFIG_FILENAME, *, check_oci_version: bool = True) -> Spec:
    """Validate an already-decoded JSON object (e.g. a generated default config) as config.json."""
    return _validate(Spec, obj, filename, context={"check_oci_version": check_oci_version})


def format_validation_error(err: ValidationError, filename: str) -> str:
    """The one-line message for a pydantic ValidationError: first error, plus how many more there are."""
    return format_errors([dict(e) for e in err.errors(include_url=False)], filename)


# --------------------------------------------------------------------------------------------------


def _validate(model: type[M], obj: Any, filename: str, context: dict[str, Any] | None = None) -> M:
    try:
        # by_name=False: a JSON document is matched by its camelCase keys only, so a stray "cgroups_path"
        # key is an unknown property (ignored), not a synonym of "cgroupsPath".
        return model.model_validate(obj, context=context, **_BY_ALIAS_ONLY)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, filename)) from None


def _by_alias_only() -> dict[str, Any]:  # Any: the keywords differ between pydantic versions
    # model_validate(by_alias=, by_name=) exists from pydantic 2.11 on; older versions match names too.
    params = inspect.signature(BaseModel.model_validate).parameters
    return {"by_alias": True, "by_name": False} if "by_name" in params else {}


_BY_ALIAS_ONLY = _by_alias_only()
