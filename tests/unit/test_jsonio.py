"""state/jsonio.py must read and write exactly what the json module does."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from state import jsonio

REPO = Path(__file__).resolve().parents[2]

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


# ---- the plain subset, read and written in Python (no _json to load) -----------------------------------------

# What engine writes into state.json: printable ASCII strings without quotes or backslashes, integers, constants.
plain_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters='"\\'), max_size=12)
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | plain_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(plain_text, children, max_size=4),
    max_leaves=20,
)
# Text that looks like JSON, with what the plain path must refuse: escapes, control characters, floats, leading
# zeros, non-ASCII, trailing commas, NaN.
JSONISH = [*'{}[]:,"-+.0123456789eE \t\n\r\\/u', "true", "false", "null", "NaN", "\x00", "\x1f", "\x7f", "é"]
jsonish = st.lists(st.sampled_from(JSONISH), max_size=30).map("".join)


@contextlib.contextmanager
def without_json() -> Iterator[None]:
    """The process as a hot command starts: _json not loaded (another test, or an example before, may have)."""
    saved, module = jsonio._accelerated, sys.modules.pop("_json", None)
    jsonio._accelerated = None
    try:
        yield
    finally:
        jsonio._accelerated = saved
        if module is not None:
            sys.modules["_json"] = module


@pytest.fixture
def plain() -> Iterator[None]:
    with without_json():
        yield


@given(plain_values)
def test_plain_values_take_the_plain_path(value: object) -> None:
    for text in (json.dumps(value), json.dumps(value, indent=2)):
        assert jsonio._plain_loads(text) == value
    out: list[str] = []
    jsonio._plain_dump(value, out)
    assert "".join(out) == json.dumps(value, separators=(",", ":"))


@given(values)
def test_the_plain_path_gives_what_json_gives_or_steps_aside(value: object) -> None:
    for text in (json.dumps(value), json.dumps(value, indent=1), json.dumps(value, ensure_ascii=False)):
        got = jsonio._plain_loads(text)
        assert got is jsonio._NOT_PLAIN or got == json.loads(text)
    out: list[str] = []
    try:
        jsonio._plain_dump(value, out)
    except jsonio._NotPlain:
        return
    assert "".join(out) == json.dumps(value, separators=(",", ":"))


@given(jsonish)
def test_the_plain_path_never_accepts_what_json_refuses(text: str) -> None:
    got = jsonio._plain_loads(text)
    if got is jsonio._NOT_PLAIN:
        return
    assert got == json.loads(text), text  # json accepts it too (raises otherwise), with the same value (NaN != NaN)


@given(values)
def test_loads_and_dumps_match_json_without_json_loaded(value: object) -> None:
    for check in (
        lambda: jsonio.dumps(value) == json.dumps(value, separators=(",", ":")),
        lambda: jsonio.dumps(value, indent=2) == json.dumps(value, indent=2),
        lambda: jsonio.loads(json.dumps(value)) == value,
    ):
        with without_json():
            assert check()


@pytest.mark.parametrize("bad", ["", "{", "[1,]", "{} x", "NaN", "[01]", '{"a":"\x01"}', "[1.]", "-", "[" * 100000])
def test_invalid_json_is_a_value_error_on_the_plain_path_too(plain: None, bad: str) -> None:
    with pytest.raises(ValueError):
        jsonio.loads(bad)


def test_a_state_record_needs_no_json_module(plain: None) -> None:
    record = {"id": "c1", "pid": 42, "status": "created", "annotations": {}, "started": None, "cgroups": {"v": 1}}
    assert jsonio.loads(jsonio.dumps(record)) == record
    assert jsonio._accelerated is None


@pytest.mark.parametrize("text", ['a"b', "a\\b", "\x7f", "\x1f", "é", "\u2028", "/"])
def test_strings_json_escapes_are_escaped_on_the_plain_path(plain: None, text: str) -> None:
    for value in (text, [text], {text: text}):
        assert jsonio.dumps(value) == json.dumps(value, separators=(",", ":"))
        assert jsonio.dumps(value, indent=2) == json.dumps(value, indent=2)
        assert jsonio.loads(json.dumps(value)) == value


def test_once_another_module_loaded_json_it_reads_everything() -> None:
    # create's engine/spec/messages.py imports _json: its config.json is then read by _json, not by Python first.
    with without_json():
        import _json  # noqa: F401  # as another module would

        assert jsonio.loads('{"a": [1, "b"]}') == {"a": [1, "b"]}
        assert jsonio._accelerated is not None


def test_create_reads_its_config_with_json() -> None:
    # create needs _json anyway (engine/spec/version.py): its config.json goes to it, not through Python first.
    code = (
        f"import sys; sys.path[:0] = [{str(REPO)!r}]; import engine.commands.create; from state import jsonio; "
        "print(jsonio._accelerated is not None)"
    )
    result = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"
