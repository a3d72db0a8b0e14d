"""engine/spec/typed.py: TypedDicts of the validated documents, generated from the models, that say what the
compiled validator really outputs (their type check, mypy --strict: tests/unit/test_typecheck.py).

The runtime reads config.json as the dict engine.spec.document returns; readers and the type checker see its
shape through these TypedDicts. They are generated from the same description of the models as the validator
(engine/spec/codegen.py), so they cannot drift from the models while this file checks that they are not stale
and that every output of the validator, on hypothesis-generated valid documents, has exactly their shape.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Literal, Required, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from engine.spec import codegen, compiled, typed
from tests.unit.test_spec_compiled import DESCRIPTION, model_strategy, mutated

REPO = Path(__file__).resolve().parents[2]
VALIDATE = {
    "Spec": compiled.validate_spec,
    "Process": compiled.validate_process,
    "Resources": compiled.validate_resources,
}


def test_typed_is_what_the_generator_writes() -> None:
    assert codegen.TYPED_OUTPUT.read_text() == codegen.render_typed(), "run `python -m engine.generate`"


def conforms(value: Any, hint: Any, where: str) -> None:
    """Fail unless `value` has the type `hint` (a TypedDict, list/dict/Literal/union of them, or a scalar)."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return
    if is_typeddict(hint):
        assert type(value) is dict, f"{where}: {value!r} is not an object"
        hints = get_type_hints(hint, include_extras=True)
        for key, key_hint in hints.items():
            if get_origin(key_hint) is Required:
                assert key in value, f"{where}: the required {key!r} is missing from {value!r}"
                key_hint = get_args(key_hint)[0]
            if key in value:
                conforms(value[key], key_hint, f"{where}.{key}")
        return
    if origin is list:
        assert type(value) is list, f"{where}: {value!r} is not a list"
        for i, item in enumerate(value):
            conforms(item, args[0], f"{where}[{i}]")
    elif origin is dict:
        assert type(value) is dict, f"{where}: {value!r} is not an object"
        for key, item in value.items():
            conforms(key, args[0], f"{where} key")
            conforms(item, args[1], f"{where}[{key!r}]")
    elif origin is Literal:
        assert value in args, f"{where}: {value!r} is none of {args}"
    elif origin in (Union, types.UnionType):
        failures = []
        for option in args:
            try:
                conforms(value, option, where)
                return
            except AssertionError as err:
                failures.append(str(err))
        raise AssertionError(" / ".join(failures))
    elif hint is type(None):
        assert value is None, f"{where}: {value!r} is not null"
    else:
        assert type(value) is hint, f"{where}: {value!r} is not a {hint.__name__}"


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: the first failure says enough
)
@given(data=st.data())
@pytest.mark.parametrize("name", ["Spec", "Process", "Resources"])
def test_the_validator_outputs_the_declared_shapes(name: str, data: st.DataObject) -> None:
    # Valid documents, and mutated ones (keys removed, values replaced) of which those still valid lack
    # optional keys: a key declared Required that a valid document may leave out fails here.
    valid = model_strategy(name, bad=False)
    doc = data.draw(st.one_of(valid, mutated(valid)))
    output, errors = VALIDATE[name](doc, {"check_oci_version": False})
    if errors:  # a model rule may still refuse a generated document: nothing was output then
        return
    conforms(output, getattr(typed, name), name)


def test_every_model_has_its_typeddict() -> None:
    assert sorted(DESCRIPTION.models) == sorted(n for n in vars(typed) if is_typeddict(getattr(typed, n)))


def test_a_wrong_shape_is_caught() -> None:
    # The check itself can fail: a process whose cwd is missing, or an int where the model says str.
    with pytest.raises(AssertionError, match="required 'cwd'"):
        conforms({"args": ["sh"]}, typed.Process, "Process")
    with pytest.raises(AssertionError, match="is not a str"):
        conforms({"cwd": 1}, typed.Process, "Process")


# mypy --strict on engine/spec, with the create path that reads these TypedDicts: tests/unit/test_typecheck.py.
