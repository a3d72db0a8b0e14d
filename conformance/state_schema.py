"""runtime.md "State": the `state` output validated against schema/state-schema.json.

The schema files are vendored in conformance/schema/ (verbatim copies from runtime-spec v1.3, checked
by tests/integration/test_conformance.py) so the suite runs anywhere. state-schema.json refers to
"defs.json#/definitions/..."; those references are resolved through a `referencing` registry holding
every vendored file under its file name, never by fetching anything.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from conformance.bundle import SLEEP_FOREVER, shell
from conformance.harness import Ctx
from conformance.registry import CheckSkipped, check, expect

SCHEMA_DIR = Path(__file__).parent / "schema"

ADHERE = "When serialized in JSON, the format MUST adhere to the JSON Schema schema/state-schema.json."
RETURN_STATE = "This operation MUST return the state of a container as specified in the State section."


@functools.cache
def state_validator() -> Any:
    """A draft-04 validator for state-schema.json (CheckSkipped when jsonschema/referencing are missing)."""
    try:
        from jsonschema import Draft4Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT4
    except ImportError as err:  # the rest of the suite needs only the standard library
        raise CheckSkipped(f"state schema not checkable: {err}") from None
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        # defs.json carries no $schema; the spec's schemas are all draft-04.
        resource = Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT4)
        resources.append((path.name, resource))
    registry: Registry[Any] = Registry().with_resources(resources)
    schema = json.loads((SCHEMA_DIR / "state-schema.json").read_text())
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema, registry=registry)


def schema_errors(state: object) -> list[str]:
    """Every violation of state-schema.json, as `path: message` lines (empty when valid)."""
    errors = sorted(state_validator().iter_errors(state), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def expect_valid(state: object, when: str) -> None:
    errors = schema_errors(state)
    expect(not errors, f"state when {when} violates state-schema.json: " + "; ".join(errors))


@check("runtime.md", "State", ADHERE, RETURN_STATE)
def state_schema_created(ctx: Ctx) -> str | None:
    # Annotations included so the defs.json#/definitions/annotations reference is exercised too.
    _, _, state = ctx.created(shell(SLEEP_FOREVER), annotations={"org.example.key": "value"})
    expect_valid(state, "created")
    return None


@check("runtime.md", "State", ADHERE, RETURN_STATE)
def state_schema_running(ctx: Ctx) -> str | None:
    _, _, state = ctx.running(shell(SLEEP_FOREVER))
    expect_valid(state, "running")
    return None


@check("runtime.md", "State", ADHERE, RETURN_STATE)
def state_schema_stopped(ctx: Ctx) -> str | None:
    cid, _, _ = ctx.created(shell("exit 0"))
    ctx.must(ctx.rt("start", cid), "start")
    expect_valid(ctx.wait_status(cid, "stopped"), "stopped")
    return None
