"""state/jsonio.py must read and write exactly what the json module does."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from state import jsonio

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(values)
def test_dumps_matches_json(value: object) -> None:
    assert jsonio.dumps(value) == json.dumps(value, separators=(",", ":"))
    assert jsonio.dumps(value, indent=2) == json.dumps(value, indent=2)


@given(values)
def test_loads_round_trips(value: object) -> None:
    assert jsonio.loads(json.dumps(value, indent=1)) == value
    assert jsonio.loads(json.dumps(value).encode()) == value


@pytest.mark.parametrize("bad", ["", "{", "[1,]", "{} x", "NaN", "{'a': 1}", '{"id": "x", "bun', "[" * 100000])
def test_invalid_json_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        jsonio.loads(bad)
