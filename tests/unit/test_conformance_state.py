"""conformance/state_schema.py (the suite's own reading of runtime.md State) against the spec's own files:
schema/state-schema.json and defs.json, read from the runtime-spec checkout beside the repository (../shared),
never copied into it. Both must call the same states valid, for hand-picked and for generated ones."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from conformance.state_schema import STATUSES, schema_problems, text_problems


@pytest.fixture(scope="module")
def spec_validator(spec_dir: Path) -> Draft4Validator:
    schema_dir = spec_dir / "schema"
    registry: Registry = Registry().with_resources(
        (name, Resource.from_contents(json.loads((schema_dir / name).read_text()), default_specification=DRAFT4))
        for name in ("defs.json", "state-schema.json")
    )
    return Draft4Validator(json.loads((schema_dir / "state-schema.json").read_text()), registry=registry)


GOOD = {"ociVersion": "1.3.0", "id": "c1", "status": "running", "pid": 42, "bundle": "/b", "annotations": {"k": "v"}}
CHANGES: list[tuple[str, Any]] = [
    ("ociVersion", 1),
    ("id", None),
    ("id", ["c1"]),
    ("status", "paused"),
    ("status", "RUNNING"),
    ("status", 3),
    ("pid", -1),
    ("pid", 1.5),
    ("pid", 1.0),
    ("pid", True),
    ("pid", "42"),
    ("pid", 2**40),
    ("bundle", 7),
    ("annotations", []),
    ("annotations", {"k": 1}),
    ("annotations", {"": 1}),  # patternProperties ".{1,}": the empty key is not constrained
    ("annotations", {}),
    ("extra", {"anything": [1, 2]}),  # "The state MAY include additional properties."
]


def spec_examples(spec_dir: Path) -> list[Any]:
    """The schema's good state examples and the example in runtime.md's State section."""
    found = [json.loads(p.read_text()) for p in sorted((spec_dir / "schema/test/state/good").glob("*.json"))]
    text = (spec_dir / "runtime.md").read_text()
    state_section = text[text.index('name="runtimeState"') : text.index('name="runtimeLifecycle"')]
    found += [json.loads(block) for block in re.findall(r"```json\n(.*?)```", state_section, re.DOTALL)]
    return found


def test_the_spec_examples_are_valid_for_both(spec_dir: Path, spec_validator: Draft4Validator) -> None:
    examples = spec_examples(spec_dir)
    assert len(examples) >= 2
    for example in examples:
        assert spec_validator.is_valid(example) and schema_problems(example) == [], example


@pytest.mark.parametrize("missing", ["ociVersion", "id", "status", "bundle", "pid", "annotations"])
def test_without_a_property(spec_validator: Draft4Validator, missing: str) -> None:
    state = {k: v for k, v in GOOD.items() if k != missing}
    assert bool(schema_problems(state)) == (not spec_validator.is_valid(state))


@pytest.mark.parametrize(("key", "value"), CHANGES)
def test_one_property_changed(spec_validator: Draft4Validator, key: str, value: Any) -> None:
    state = {**GOOD, key: value}
    assert bool(schema_problems(state)) == (not spec_validator.is_valid(state)), schema_problems(state)


def test_not_an_object(spec_validator: Draft4Validator) -> None:
    for value in ([GOOD], "state", None, 3):
        assert schema_problems(value) and not spec_validator.is_valid(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**33), 2**33) | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
state_like = st.dictionaries(
    st.sampled_from(["ociVersion", "id", "status", "pid", "bundle", "annotations", "other"]),
    json_values
    | st.sampled_from([*STATUSES, "paused", "/abs", "rel"])
    | st.dictionaries(st.text(max_size=3), st.text(max_size=3) | st.integers(), max_size=3),
    max_size=7,
)


@settings(max_examples=300, deadline=None)
@given(state_like)
def test_generated_states(spec_validator: Draft4Validator, state: dict[str, Any]) -> None:
    assert bool(schema_problems(state)) == (not spec_validator.is_valid(state)), (state, schema_problems(state))


def test_what_the_text_adds_to_the_schema() -> None:
    # "pid (int, REQUIRED when status is created or running on Linux ...)"; "bundle ... is the absolute path".
    assert text_problems(GOOD) == []
    assert text_problems({**GOOD, "bundle": "relative/b"}) == ["bundle: 'relative/b' is not an absolute path"]
    no_pid = {k: v for k, v in GOOD.items() if k != "pid"}
    assert text_problems(no_pid) == ["pid: missing, REQUIRED when status is running on Linux"]
    assert text_problems({**no_pid, "status": "stopped"}) == []
