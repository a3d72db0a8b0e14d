"""runtime.md "State": the `state` output checked against the spec's facts about it.

The facts are written here, in the suite's own code, each with the spec text it comes from: the State section's
property list and what schema/state-schema.json (with defs.json) requires. The spec's schema files themselves
are not part of this project: tests/unit/test_conformance_state.py reads them from the runtime-spec checkout
(../shared) and checks that this code and the schema agree on every state they are shown.
"""

from __future__ import annotations

from typing import Any

from conformance.bundle import SLEEP_FOREVER, shell
from conformance.harness import Ctx
from conformance.registry import check, expect

ADHERE = "When serialized in JSON, the format MUST adhere to the JSON Schema schema/state-schema.json."
RETURN_STATE = "This operation MUST return the state of a container as specified in the State section."

# runtime.md State, and schema/state-schema.json's "required" list.
REQUIRED = ("ociVersion", "id", "status", "bundle")
# state-schema.json: "status": {"type": "string", "enum": [...]}. (runtime.md lets a runtime define more values
# for new states, but the schema the format MUST adhere to lists these four.)
STATUSES = ("creating", "created", "running", "stopped")
# The property types, from runtime.md ("ociVersion (string, REQUIRED)", ...) and the schema: ociVersion is
# defs.json's ociVersion ({"type": "string"}), pid {"type": "integer", "minimum": 0}, annotations defs.json's
# mapStringString ({"type": "object", "patternProperties": {".{1,}": {"type": "string"}}}).
STRINGS = ("ociVersion", "id", "status", "bundle")


def _is_integer(value: object) -> bool:
    # draft-04's "integer" (the schema's $schema): a JSON number written without a fraction (1.0 is not one, as
    # it is from draft-06 on), never a boolean.
    return isinstance(value, int) and not isinstance(value, bool)


def schema_problems(state: object) -> list[str]:
    """What state-schema.json (draft-04, with defs.json) finds wrong in `state`: empty when it adheres."""
    if not isinstance(state, dict):
        return [f"<root>: {type(state).__name__} is not an object"]
    problems = [f"{name}: missing (REQUIRED)" for name in REQUIRED if name not in state]
    for name in STRINGS:
        if name in state and not isinstance(state[name], str):
            problems.append(f"{name}: {state[name]!r} is not a string")
    if isinstance(state.get("status"), str) and state["status"] not in STATUSES:
        problems.append(f"status: {state['status']!r} is not one of {', '.join(STATUSES)}")
    if "pid" in state:
        pid = state["pid"]
        if not _is_integer(pid):
            problems.append(f"pid: {pid!r} is not an integer")
        elif pid < 0:
            problems.append(f"pid: {pid} is below the minimum 0")
    if "annotations" in state:
        annotations = state["annotations"]
        if not isinstance(annotations, dict):
            problems.append(f"annotations: {annotations!r} is not an object")
        else:
            problems += [
                f"annotations/{key}: {value!r} is not a string"
                for key, value in annotations.items()
                if key and not isinstance(value, str)  # patternProperties ".{1,}": every key but the empty one
            ]
    return problems


def text_problems(state: dict[str, Any]) -> list[str]:
    """What runtime.md's State section asks beyond the schema."""
    problems = []
    # "pid (int, REQUIRED when status is created or running on Linux, ...)"
    if state.get("status") in ("created", "running") and "pid" not in state:
        problems.append(f"pid: missing, REQUIRED when status is {state['status']} on Linux")
    # "bundle (string, REQUIRED) is the absolute path to the container's bundle directory."
    if isinstance(state.get("bundle"), str) and not state["bundle"].startswith("/"):
        problems.append(f"bundle: {state['bundle']!r} is not an absolute path")
    return problems


def expect_valid(state: object, when: str) -> None:
    problems = schema_problems(state)
    if not problems and isinstance(state, dict):
        problems = text_problems(state)
    expect(not problems, f"state when {when} violates runtime.md State / state-schema.json: " + "; ".join(problems))


@check("runtime.md", "State", ADHERE, RETURN_STATE)
def state_schema_created(ctx: Ctx) -> str | None:
    # Annotations included so that the annotations property is checked too.
    _, _, state = ctx.created(shell(SLEEP_FOREVER), annotations={"org.example.key": "value"})
    expect_valid(state, "created")
    expect(
        state.get("annotations") == {"org.example.key": "value"},
        f"annotations {state.get('annotations')!r}, config.json had {{'org.example.key': 'value'}}",
    )
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
