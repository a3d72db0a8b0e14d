"""engine/spec/compiled.py gives the pydantic models' verdict, output and error message, and is not stale.

The compiled validator is what create, run, `exec --process` and `update --resources` use; the models in
engine/spec/models.py stay the definition. Every document here goes through both: the same verdict, the same
output (model_dump(by_alias=True, exclude_none=True), key order included), the same errors in the same order,
and so the same one-line message. Documents: hypothesis-generated ones (directed by the models' own
description, so every field gets valid values and near misses: wrong types, bounds, patterns, literals,
missing and unknown keys, nulls, huge numbers, unicode), and every file under runtime-spec's schema/test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from engine.spec import codegen, compiled, models
from engine.spec.codegen import (
    AnyType,
    BoolType,
    DictType,
    IntType,
    ListType,
    LiteralType,
    ModelType,
    NullableType,
    RuleType,
    StrType,
)
from engine.spec.messages import format_errors
from state import jsonio
from tests.unit.test_spec_load import all_paths

SPEC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "runtime-spec"
DESCRIPTION = codegen.describe_models()
VALIDATORS = {
    "spec": (models.Spec, compiled.validate_spec),
    "process": (models.Process, compiled.validate_process),
    "resources": (models.Resources, compiled.validate_resources),
}


# ---- the oracle ---------------------------------------------------------------------------------------------


def shape(value: Any) -> Any:
    """The value with its key order made visible (dict equality ignores order; a dump's order is output too)."""
    if isinstance(value, dict):
        return [(k, shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [shape(v) for v in value]
    return value


def by_models(model: type[BaseModel], doc: Any, context: dict[str, Any]) -> tuple[Any, list[tuple[Any, ...]], str]:
    try:
        validated = model.model_validate(doc, context=context, by_alias=True, by_name=False)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        return None, [(err["type"], err["loc"]) for err in errors], format_errors(errors, "doc.json")
    return validated.model_dump(by_alias=True, exclude_none=True), [], ""


def by_compiled(root: str, doc: Any, context: dict[str, Any]) -> tuple[Any, list[tuple[Any, ...]], str]:
    output, errors = VALIDATORS[root][1](doc, context)
    return _result(output, errors)


def _result(output: Any, errors: list[Any]) -> tuple[Any, list[tuple[Any, ...]], str]:
    if errors:
        return (
            None,
            [(kind, loc) for kind, loc, _, _ in errors],
            format_errors(compiled.error_dicts(errors), "doc.json"),
        )
    return output, [], ""


def assert_same(root: str, doc: Any, context: dict[str, Any]) -> bool:
    """Both validators agree on `doc`; returns the verdict (True: valid)."""
    return _compare(by_models(VALIDATORS[root][0], doc, context), by_compiled(root, doc, context), doc)


def assert_same_model(name: str, doc: Any, context: dict[str, Any]) -> bool:
    """As assert_same, for any one model (the compiled module has a function per model)."""
    errors: list[Any] = []
    output = getattr(compiled, f"_{name}")(doc, (), errors, context)
    return _compare(by_models(getattr(models, name), doc, context), _result(output, errors), doc)


def _compare(expected: tuple[Any, list[Any], str], got: tuple[Any, list[Any], str], doc: Any) -> bool:
    assert got[1] == expected[1], f"errors differ for {doc!r}"
    assert got[2] == expected[2]
    assert shape(got[0]) == shape(expected[0]), f"outputs differ for {doc!r}"
    return not expected[1]


# ---- documents directed by the models -----------------------------------------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=6)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=5,
)
# Mostly printable, but also newlines, non-ASCII and astral characters (JSON text is UTF-8: no lone surrogates,
# which engine.spec.document refuses before validation).
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
VERSIONS = ["1.0.0", "1.3.0", "1.2.1+dev", "1.0.2-dev", "1.4.0", "0.5.0-dev", "2.0.0", "1.0", "01.0.0", "1.3.0\n"]


def near_misses(value: str) -> st.SearchStrategy[str]:
    return st.sampled_from([value.lower(), value + "\n", value + " ", value[:-1], "", value.upper() + "X"])


def python_regex(pattern: str) -> str:
    # Rust's `$` is the end of the text; Python's also matches before a final newline.
    return pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern


def strategy(t: Any, key: str, bad: bool) -> st.SearchStrategy[Any]:
    """Values of type `t`: valid ones, or (bad) mostly valid with near misses and, often, anything at all."""
    valid = _valid(t, key, bad)
    return st.one_of(valid, valid, valid, json_values) if bad and not isinstance(t, NullableType | AnyType) else valid


def _valid(t: Any, key: str, bad: bool) -> st.SearchStrategy[Any]:
    if isinstance(t, AnyType):
        return json_values
    if isinstance(t, BoolType):
        return st.booleans() | st.sampled_from([0, 1, "true"]) if bad else st.booleans()
    if isinstance(t, IntType):
        low = t.ge if t.ge is not None else -(2**64)
        high = t.le if t.le is not None else 2**64
        edges = st.sampled_from([low, high])
        if not bad:
            return st.integers(low, high) | edges
        beyond = st.sampled_from([low - 1, high + 1])
        return st.integers(low, high) | edges | beyond | st.sampled_from([2**70, -(2**70), True, 1.0, 1e30, "1"])
    if isinstance(t, StrType):
        if key == "ociVersion":
            return st.sampled_from(VERSIONS) | texts if bad else st.sampled_from(VERSIONS[:4])
        if t.pattern is not None:
            matching = st.from_regex(python_regex(t.pattern), fullmatch=True).map(lambda s: s[:40])
            return matching | matching.flatmap(near_misses) | texts if bad else matching
        return texts | st.sampled_from(["", "/", "a\nb", "ü", "😀", "p"])
    if isinstance(t, LiteralType):
        values = st.sampled_from(sorted(t.values))
        return values | values.flatmap(near_misses) if bad else values
    if isinstance(t, ListType):
        return st.lists(strategy(t.item, key, bad), min_size=0 if bad else t.min_length or 0, max_size=3)
    if isinstance(t, DictType):
        keys = st.sampled_from(["", "a.b", "mlx5_1", "x", "ü"]) | texts
        return st.dictionaries(keys, strategy(t.value, key, bad), max_size=3)
    if isinstance(t, NullableType):
        return st.none() | strategy(t.inner, key, bad)
    if isinstance(t, RuleType):
        return strategy(t.inner, key, bad)
    if isinstance(t, ModelType):
        return st.deferred(lambda: model_strategy(t.name, bad))
    raise AssertionError(f"no strategy for {t!r}")


def model_strategy(name: str, bad: bool) -> st.SearchStrategy[dict[str, Any]]:
    model = DESCRIPTION.models[name]
    fields = {f.key: strategy(f.type, f.key, bad) for f in model.fields}
    # Unknown keys: anything, a field's Python name (a JSON key only by alias), or a near miss of a key.
    unknown = st.sampled_from([f.attribute for f in model.fields] + ["x", "Type", "args "]) | texts
    extras = st.dictionaries(unknown, json_values, max_size=2)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for f in model.fields:
            # Required fields are there (nearly always, when bad), optional ones sometimes.
            if (f.required and not bad) or draw(st.integers(0, 9)) < (9 if f.required else 3):
                doc[f.key] = draw(fields[f.key])
        doc.update(draw(extras))
        return doc

    return build()


EDGES = st.sampled_from([None, 2**64, 2**63, -1, 0, "", "\n", True, 1.0, [], {}, "SCMP_ACT_ALLOW", "pid", "/"])


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[Any]) -> Any:
    """A valid document with one to three values replaced or keys removed: errors one at a time."""
    doc = draw(valid)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(all_paths(doc)))
        if not path:
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(EDGES | json_values)
    return doc


ROOT_STRATEGIES = {
    root: st.one_of(
        model_strategy(DESCRIPTION.roots[root], bad=False),
        model_strategy(DESCRIPTION.roots[root], bad=True),
        mutated(model_strategy(DESCRIPTION.roots[root], bad=False)),
    )
    for root in VALIDATORS
}
contexts = st.sampled_from([{}, {"check_oci_version": False}, {"check_oci_version": True}])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(doc=ROOT_STRATEGIES["spec"], context=contexts)
def test_generated_configs(doc: dict[str, Any], context: dict[str, Any]) -> None:
    assert_same("spec", doc, context)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=ROOT_STRATEGIES["process"])
def test_generated_processes(doc: dict[str, Any]) -> None:
    assert_same("process", doc, {})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=ROOT_STRATEGIES["resources"])
def test_generated_resources(doc: dict[str, Any]) -> None:
    assert_same("resources", doc, {})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
@pytest.mark.parametrize("name", sorted(DESCRIPTION.models))
def test_generated_objects_of_every_model(name: str, data: st.DataObject) -> None:
    # Each model on its own too, so that deeply nested ones (linux.resources.blockIO...) get as many tries.
    valid = model_strategy(name, bad=False)
    doc = data.draw(st.one_of(valid, model_strategy(name, bad=True), mutated(valid)))
    assert_same_model(name, doc, data.draw(contexts))


def minimal(t: Any) -> Any:
    """A valid value of type t, as small as it gets."""
    if isinstance(t, IntType):
        return t.ge if t.ge is not None else 0
    if isinstance(t, StrType):
        return {None: "x", "^RLIMIT_[A-Z]+$": "RLIMIT_CPU", "^[0-9, -]*$": "0-1", "^[1-9][0-9]*[KMG]B$": "2MB"}.get(
            t.pattern, "MB:0=1"
        )
    if isinstance(t, LiteralType):
        return sorted(t.values)[0]
    if isinstance(t, ListType):
        return [minimal(t.item)] * (t.min_length or 0)
    if isinstance(t, ModelType):
        model = DESCRIPTION.models[t.name]
        doc = {f.key: minimal(f.type) for f in model.fields if f.required}
        if t.name == "Spec":
            doc["ociVersion"] = "1.3.0"
        if t.name == "Device":
            doc["type"] = "p"  # the one type that needs no major and minor
        return doc
    return {BoolType: True, DictType: {}, AnyType: 1}.get(type(t))


def edges(t: Any) -> list[Any]:
    """The values at and just beyond what type t accepts, and a few of the wrong type."""
    wrong = [None, 1.0, True, "1", [], {}]
    if isinstance(t, NullableType | RuleType):
        return edges(t.inner)
    if isinstance(t, IntType):
        low = t.ge if t.ge is not None else -(2**64)
        high = t.le if t.le is not None else 2**64
        return [low - 1, low, high, high + 1, 2**70, *wrong]
    if isinstance(t, StrType):
        return [minimal(t), minimal(t) + "\n", "\n" + minimal(t), minimal(t).lower(), "", "ü", 1, *wrong]
    if isinstance(t, LiteralType):
        return [*sorted(t.values), *(v.lower() + " " for v in t.values), "", *wrong]
    if isinstance(t, ListType):
        return [[], [minimal(t.item)] * 2, *([v] for v in edges(t.item)), *wrong]
    if isinstance(t, DictType):
        return [{"": minimal(t.value)}, {"a.b": minimal(t.value)}, *({"k": v} for v in edges(t.value)), *wrong]
    if isinstance(t, ModelType):
        return [minimal(t), *wrong]
    return [True, False, 0, 1, *wrong]


@pytest.mark.parametrize("name", sorted(DESCRIPTION.models))
def test_every_field_at_its_edges(name: str) -> None:
    # Deterministic: each field of each model, one at a time, at and beyond its bounds, on a minimal object.
    model = DESCRIPTION.models[name]
    base = minimal(ModelType(name))
    assert assert_same_model(name, base, {}), f"the minimal {name} should be valid: {base}"
    for f in model.fields:
        for value in edges(f.type):
            assert_same_model(name, {**base, f.key: value}, {})
        assert_same_model(name, {k: v for k, v in base.items() if k != f.key}, {})


@settings(max_examples=200, deadline=None)
@given(doc=json_values)
def test_any_json_value(doc: Any) -> None:
    for root in VALIDATORS:
        assert_same(root, doc, {})


def test_the_generator_finds_both_verdicts() -> None:
    # A differential test that only ever sees rejections proves little: count what it produces.
    verdicts = []

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(doc=ROOT_STRATEGIES["spec"])
    def run(doc: dict[str, Any]) -> None:
        verdicts.append(assert_same("spec", doc, {"check_oci_version": False}))

    run()
    assert sum(verdicts) >= 10, f"only {sum(verdicts)} of {len(verdicts)} generated configs were valid"
    assert len(verdicts) - sum(verdicts) >= 10


# ---- hand-picked documents ----------------------------------------------------------------------------------

V = {"ociVersion": "1.3.0"}
CASES = [
    {**V, "process": {"cwd": "/", "args": []}},
    {**V, "process": {"cwd": "/", "args": [], "commandLine": "x"}},
    {**V, "process": {"cwd": "/", "args": ["a"], "rlimits": [{"type": "RLIMIT_A", "soft": 1, "hard": 1}] * 2}},
    {**V, "process": {"cwd": "/", "rlimits": [{"type": "RLIMIT_CPU\n", "soft": 1, "hard": 1}]}},
    {**V, "linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}], "sysctl": {"a": "b"}}},
    {**V, "linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}], "sysctl": {"a": 1}}},
    {**V, "linux": {"devices": [{"type": "c", "path": "/dev/x"}, {"type": "p", "path": "/p"}]}},
    {**V, "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}}},
    {**V, "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "x"}]}}},
    {**V, "linux": {"intelRdt": {"schemata": ["L3:0=f\nMB:0=1"], "memBwSchema": "MB:0=20\n"}}},
    {**V, "linux": {"resources": {"memory": {"limit": 2**63}, "pids": {}, "rdma": {"m-1": {"hcaHandles": None}}}}},
    {**V, "linux": {"resources": {"hugepageLimits": [{"pageSize": "2MB", "limit": 2**64}]}}},
    {**V, "mounts": [{"destination": "/", "uidMappings": [], "gidMappings": None}]},
    {**V, "mounts": [{"destination": "/", "uid_mappings": []}], "oci_version": "x", "x": None, "y": {"z": None}},
    {**V, "annotations": {"": "x"}, "hostname": None, "solaris": {"a": None}},
    {**V, "root": {"path": 1, "readonly": "no"}, "hostname": 2},
    {"ociVersion": "1.3.0\n"},
    {"ociVersion": "٣.0.0"},
    {},
    [],
    "config",
    None,
]


@pytest.mark.parametrize("doc", CASES, ids=range(len(CASES)))
@pytest.mark.parametrize("context", [{}, {"check_oci_version": False}], ids=["range", "semver"])
def test_hand_picked(doc: Any, context: dict[str, Any]) -> None:
    assert_same("spec", doc, context)


def schema_test_documents() -> list[Any]:
    folder = SPEC_DIR / "schema" / "test"
    if not folder.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"runtime-spec not found at {SPEC_DIR}"))]
    return sorted(folder.rglob("*.json"))


@pytest.mark.parametrize("path", schema_test_documents(), ids=lambda p: str(p).split("schema/test/")[-1])
def test_every_schema_test_document(path: Path) -> None:
    try:
        doc = jsonio.loads(path.read_bytes())
    except ValueError:
        pytest.skip("not JSON (an invalid-json test document): engine.spec.document rejects it before validation")
    for context in ({}, {"check_oci_version": False}):
        assert_same("spec", doc, context)
    if isinstance(doc, dict):
        if "process" in doc:
            assert_same("process", doc["process"], {})
        resources = (doc.get("linux") or {}).get("resources") if isinstance(doc.get("linux"), dict) else None
        if resources is not None:
            assert_same("resources", resources, {})


# ---- the generated file is the models' --------------------------------------------------------------------


def test_compiled_validator_is_not_stale() -> None:
    # Cheap and first: the sources it was generated from are unchanged.
    assert codegen.source_hash() == compiled.SOURCE_HASH, (
        f"engine/spec/compiled.py was generated from other sources than {', '.join(codegen.SOURCES)} are now: "
        "run `python -m engine.spec.codegen`"
    )


def test_compiled_validator_is_what_the_generator_writes() -> None:
    # And regenerating it from the models as pydantic (the installed version) reads them changes nothing.
    assert codegen.OUTPUT.read_text() == codegen.generate(), "run `python -m engine.spec.codegen`"


def test_a_changed_model_makes_it_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    # The staleness check really looks at the models' source (this test fails if it hashed nothing).
    real = Path.read_bytes

    def edited(self: Path) -> bytes:
        data = real(self)
        return data + b"\n# an edit\n" if self.name == "models.py" else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    assert codegen.source_hash() != compiled.SOURCE_HASH


def test_every_model_validator_is_compiled_once() -> None:
    # Process is reached twice (on its own for exec, inside Spec): its rule must still run once.
    for name, model in DESCRIPTION.models.items():
        declared = getattr(models, name).__pydantic_decorators__.model_validators
        assert sorted(model.rules) == sorted(d.func.__spec_rule__.__name__ for d in declared.values()), name


def test_custom_validator_without_a_rule_is_refused() -> None:
    from pydantic import field_validator

    class Odd(models.SpecModel):
        name: str

        @field_validator("name")
        @classmethod
        def _check(cls, value: str) -> str:
            return value

    reader = codegen.Reader()
    with pytest.raises(codegen.GenerationError, match=r"rules\.py"):
        reader.root("odd", Odd)


def test_unsupported_constraint_is_refused() -> None:
    from pydantic import Field

    class Odd(models.SpecModel):
        name: str = Field(max_length=3)

    with pytest.raises(codegen.GenerationError, match="max_length"):
        codegen.Reader().root("odd", Odd)


# ---- the pattern subset matches as the Rust regex crate (and Python's re with \\Z) does ---------------------


def patterns_in(t: Any) -> set[str]:
    if isinstance(t, StrType):
        return {t.pattern} if t.pattern else set()
    inner = [getattr(t, name) for name in ("inner", "item", "key", "value") if hasattr(t, name)]
    return set().union(*(patterns_in(i) for i in inner)) if inner else set()


PATTERNS = sorted(
    {p for m in DESCRIPTION.models.values() for f in m.fields for p in patterns_in(f.type)}
    | {"^CAP_[A-Z_]+$", "^a?b*c+$", "x[^y-z]", "^[-a]\\.$"}
)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("regex", [p for p in PATTERNS if p])
def test_pattern_subset(regex: str, data: st.DataObject) -> None:
    from engine.spec import pattern

    python = re.compile(python_regex(regex))
    text = data.draw(
        st.from_regex(python, fullmatch=False) | st.text(max_size=12) | st.from_regex(python).map(str.upper)
    )
    assert pattern.compile(regex)(text) == bool(python.search(text)), (regex, text)


@pytest.mark.parametrize("regex", ["a|b", "(a)", "a{2}", "\\d", ".", "a*?", "[a", "a\\"])
def test_pattern_subset_refuses_the_rest(regex: str) -> None:
    from engine.spec import pattern

    with pytest.raises(ValueError):
        pattern.compile(regex)
