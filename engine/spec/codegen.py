"""Generates engine/spec/compiled.py, the runtime's validator, from the pydantic models in engine/spec/models.py.

    python -m engine.spec.codegen            # rewrite engine/spec/compiled.py
    python -m engine.spec.codegen --check    # exit 1 if it is stale

Why: importing pydantic (pydantic_core.core_schema, typing_extensions, annotated_types, inspect) and building
the models' validators costs `engine create` ~100-250 ms, while checking a config.json takes well under a
millisecond. The models stay the only definition of a valid document; this module reads what pydantic itself
executes, the models' *core schema*, and writes plain Python that does the same: same verdict, same output
(`model_dump(by_alias=True, exclude_none=True)`), same errors in the same order (so the same one-line message,
engine/spec/messages.py). tests/unit/test_spec_compiled.py proves it on generated documents and fails while the
generated file is stale.

The reading is strict: every core schema node and key is either understood or refused with GenerationError, so
a model that uses something this generator does not know (a new constraint, a before-validator, a union) stops
the generation instead of being checked differently. Custom validators must be engine/spec/rules.py functions
wrapped by models.field_rule / models.model_rule: the generated code calls the same functions.

The models are first read into a small description (Model, Field and the type classes below); the validator is
written from that. The same description gives engine/spec/typed.py, TypedDicts of the validated documents
(render_typed).
"""

from __future__ import annotations

import argparse
import hashlib
import keyword
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from engine.spec import pattern as pattern_module
from engine.spec import rules as rules_module

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "compiled.py"
# What the generated file is derived from: it records their hash, and a test compares.
SOURCES = ("models.py", "constants.py", "codegen.py")


class GenerationError(Exception):
    """The models use something this generator cannot reproduce faithfully."""


# ---- the description --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnyType:
    pass


@dataclass(frozen=True)
class BoolType:
    pass


@dataclass(frozen=True)
class IntType:
    ge: int | None = None
    le: int | None = None


@dataclass(frozen=True)
class StrType:
    pattern: str | None = None


@dataclass(frozen=True)
class LiteralType:
    values: tuple[str, ...]


@dataclass(frozen=True)
class ListType:
    item: Type
    min_length: int | None = None


@dataclass(frozen=True)
class DictType:
    key: Type
    value: Type


@dataclass(frozen=True)
class NullableType:
    inner: Type


@dataclass(frozen=True)
class RuleType:
    """A field-level rule (engine/spec/rules.py) checked once `inner` validated."""

    inner: Type
    rule: str


@dataclass(frozen=True)
class ModelType:
    name: str


Type = AnyType | BoolType | IntType | StrType | LiteralType | ListType | DictType | NullableType | RuleType | ModelType


@dataclass
class Field:
    attribute: str
    key: str  # the JSON key (validation alias)
    output_key: str  # the key in model_dump(by_alias=True) (serialization alias)
    type: Type
    required: bool


@dataclass
class Model:
    name: str
    fields: list[Field]
    rules: list[str]  # model rules, in the order pydantic runs them
    doc: str = ""


@dataclass
class Description:
    models: dict[str, Model] = field(default_factory=dict)
    roots: dict[str, str] = field(default_factory=dict)  # public name -> model name


# ---- reading the core schema ------------------------------------------------------------------------------

# Keys that carry no validation meaning (JSON schema hints, serialization, references resolved elsewhere).
_IGNORED = {"type", "metadata", "ref", "serialization"}
# Model config entries that do not change validation in strict, by-alias mode.
_HARMLESS_CONFIG = {"title", "validate_by_alias", "validate_by_name", "populate_by_name", "loc_by_alias"}


def _rule_of(function_spec: dict[str, Any], where: str) -> str:
    function = function_spec.get("function")
    function = getattr(function, "__func__", function)
    rule = getattr(function, "__spec_rule__", None)
    if rule is None or getattr(rules_module, rule.__name__, None) is not rule:
        raise GenerationError(
            f"{where}: custom validator {getattr(function, '__qualname__', function)!r} is not an "
            "engine/spec/rules.py function wrapped by models.field_rule/model_rule: the compiled validator "
            "cannot call it (move its logic into engine/spec/rules.py)"
        )
    return str(getattr(rule, "__name__", rule))


def _only(schema: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(schema) - allowed - _IGNORED
    if unknown:
        raise GenerationError(f"{where}: {schema.get('type')} schema with {sorted(unknown)}: not supported")
    if schema.get("strict", True) is not True:
        raise GenerationError(f"{where}: a lax (strict=False) {schema.get('type')} is not supported")


class Reader:
    def __init__(self) -> None:
        self.description = Description()
        self.definitions: dict[str, dict[str, Any]] = {}
        self.classes: dict[str, type] = {}
        self.model_rules: dict[str, list[str]] = {}

    def root(self, public_name: str, model: type[BaseModel]) -> None:
        schema = dict(model.__pydantic_core_schema__)
        found = self.type_of(schema, model.__name__)
        if not isinstance(found, ModelType):
            raise GenerationError(f"{model.__name__}: not a model schema")
        self.description.roots[public_name] = found.name

    def type_of(self, schema: dict[str, Any], where: str) -> Type:
        kind = schema["type"]
        if kind == "definitions":
            _only(schema, {"schema", "definitions"}, where)
            for definition in schema["definitions"]:
                self.definitions[definition["ref"]] = definition
            return self.type_of(schema["schema"], where)
        if kind == "definition-ref":
            _only(schema, {"schema_ref"}, where)
            return self.type_of(self.definitions[schema["schema_ref"]], where)
        if kind == "function-after":
            if self._wraps_model(schema):
                return self._model_with_rules(schema, where)
            _only(schema, {"function", "schema"}, where)
            return RuleType(self.type_of(schema["schema"], where), _rule_of(schema["function"], where))
        if kind == "model":
            return self._model(schema, where)
        if kind == "nullable":
            _only(schema, {"schema"}, where)
            return NullableType(self.type_of(schema["schema"], where))
        if kind == "any":
            _only(schema, set(), where)
            return AnyType()
        if kind == "bool":
            _only(schema, {"strict"}, where)
            return BoolType()
        if kind == "int":
            _only(schema, {"ge", "le", "strict"}, where)
            return IntType(schema.get("ge"), schema.get("le"))
        if kind == "str":
            _only(schema, {"pattern", "strict"}, where)
            if schema.get("pattern") is not None:
                try:
                    pattern_module.parse(schema["pattern"])
                except ValueError as e:
                    raise GenerationError(f"{where}: {e}") from None
            return StrType(schema.get("pattern"))
        if kind == "literal":
            _only(schema, {"expected"}, where)
            values = tuple(schema["expected"])
            if not all(type(v) is str for v in values):
                raise GenerationError(f"{where}: literal {values!r}: only string literals are supported")
            return LiteralType(values)
        if kind == "list":
            _only(schema, {"items_schema", "min_length", "strict"}, where)
            return ListType(self.type_of(schema["items_schema"], where), schema.get("min_length"))
        if kind == "dict":
            _only(schema, {"keys_schema", "values_schema", "strict"}, where)
            return DictType(
                self.type_of(schema.get("keys_schema", {"type": "any"}), where + "[key]"),
                self.type_of(schema.get("values_schema", {"type": "any"}), where + "[value]"),
            )
        raise GenerationError(f"{where}: core schema type {kind!r} is not supported")

    def _wraps_model(self, schema: dict[str, Any]) -> bool:
        while schema["type"] in ("function-after", "definition-ref"):
            schema = self.definitions[schema["schema_ref"]] if schema["type"] == "definition-ref" else schema["schema"]
        return bool(schema["type"] == "model")

    def _model_with_rules(self, schema: dict[str, Any], where: str) -> ModelType:
        """A model wrapped in its model validators (function-after, outermost first)."""
        rules = []
        while schema["type"] != "model":
            if schema["type"] == "definition-ref":
                schema = self.definitions[schema["schema_ref"]]
                continue
            _only(schema, {"function", "schema"}, where)
            rules.append(_rule_of(schema["function"], where))
            schema = schema["schema"]
        model = self._model(schema, where)
        rules.reverse()  # pydantic runs the innermost first
        # A model reached again (Process on its own and inside Spec) must come with the same rules, once.
        known = self.model_rules.setdefault(model.name, rules)
        if known != rules:
            raise GenerationError(f"{model.name}: different model validators in different places: {known} {rules}")
        self.description.models[model.name].rules = list(rules)
        return model

    def _model(self, schema: dict[str, Any], where: str) -> ModelType:
        _only(schema, {"cls", "config", "schema", "custom_init", "root_model", "post_init"}, where)
        cls = schema["cls"]
        name = cls.__name__
        if schema.get("custom_init") or schema.get("root_model") or schema.get("post_init"):
            raise GenerationError(f"{name}: custom __init__, root models and post_init are not supported")
        config = schema.get("config", {})
        if config.get("strict") is not True or config.get("extra_fields_behavior") != "allow":
            raise GenerationError(f"{name}: only strict models that allow extra keys are supported")
        unknown = set(config) - _HARMLESS_CONFIG - {"strict", "extra_fields_behavior"}
        if unknown:
            raise GenerationError(f"{name}: model config {sorted(unknown)} is not supported")
        if name in self.classes:
            if self.classes[name] is not cls:
                raise GenerationError(f"two models named {name}")
            return ModelType(name)
        self.classes[name] = cls
        model = Model(name, [], [], doc=cls.__qualname__)
        self.description.models[name] = model  # before the fields: a model may (indirectly) contain itself
        fields_schema = schema["schema"]
        if fields_schema["type"] != "model-fields":
            raise GenerationError(f"{name}: {fields_schema['type']} inside a model is not supported")
        _only(fields_schema, {"fields", "computed_fields", "model_name", "strict", "extra_behavior"}, name)
        if fields_schema.get("computed_fields"):
            raise GenerationError(f"{name}: computed fields are not supported")
        for attribute, field_schema in fields_schema["fields"].items():
            model.fields.append(self._field(name, attribute, field_schema))
        return ModelType(name)

    def _field(self, model: str, attribute: str, schema: dict[str, Any]) -> Field:
        where = f"{model}.{attribute}"
        if schema["type"] != "model-field":
            raise GenerationError(f"{where}: {schema['type']} is not a model field")
        _only(schema, {"schema", "validation_alias", "serialization_alias", "frozen"}, where)
        key = schema.get("validation_alias", attribute)
        if not isinstance(key, str):
            raise GenerationError(f"{where}: alias paths and choices are not supported")
        output_key = schema.get("serialization_alias", attribute)
        inner = schema["schema"]
        required = True
        if inner["type"] == "default":
            _only(inner, {"schema", "default"}, where)
            if inner.get("default", ...) is not None:
                raise GenerationError(f"{where}: only None defaults are supported")
            required = False
            inner = inner["schema"]
        return Field(attribute, key, output_key, self.type_of(inner, where), required)


def describe_models() -> Description:
    """The description of the documents the runtime validates: config.json, process.json, resources."""
    from engine.spec import models

    reader = Reader()
    reader.root("spec", models.Spec)
    reader.root("process", models.Process)
    reader.root("resources", models.Resources)
    return reader.description


# ---- writing the validator --------------------------------------------------------------------------------


def _literal_expected(values: tuple[str, ...]) -> str:
    # pydantic-core's ctx["expected"]: reprs joined by ", " with " or " before the last.
    quoted = [repr(v) for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


class Writer:
    def __init__(self, description: Description) -> None:
        self.description = description
        self.lines: list[str] = []
        self.constants: dict[Any, str] = {}
        self.constant_lines: list[str] = []
        self.counter = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def constant(self, kind: str, value: Any, code: str) -> str:
        key = (kind, value)
        if key not in self.constants:
            name = f"_{kind.upper()}{len(self.constants)}"
            self.constants[key] = name
            self.constant_lines.append(f"{name} = {code}")
        return self.constants[key]

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    @staticmethod
    def loc(base: str, parts: tuple[str, ...]) -> str:
        return f"{base} + ({', '.join(parts)},)" if parts else base

    def error(self, indent: int, kind: str, loc: str, value: str, ctx: str = "None") -> None:
        self.emit(indent, f"errors.append(({kind!r}, {loc}, {value}, {ctx}))")

    def check(self, t: Type, src: str, dst: str, base: str, parts: tuple[str, ...], indent: int) -> None:
        """Lines that validate the value in variable `src` into `dst` (None when invalid), errors at loc."""
        loc = self.loc(base, parts)
        if isinstance(t, AnyType):
            self.emit(indent, f"{dst} = {src}")
        elif isinstance(t, ModelType):
            self.emit(indent, f"{dst} = _{t.name}({src}, {loc}, errors, context)")
        elif isinstance(t, NullableType):
            self.emit(indent, f"if {src} is None:")
            self.emit(indent + 1, f"{dst} = None")
            self.emit(indent, "else:")
            self.check(t.inner, src, dst, base, parts, indent + 1)
        elif isinstance(t, RuleType):
            before = self.fresh("n")
            self.emit(indent, f"{before} = len(errors)")
            self.check(t.inner, src, dst, base, parts, indent)
            self.emit(indent, f"if len(errors) == {before}:")
            self.rule_call(indent + 1, f"_rules.{t.rule}({dst}, context)", loc, src, after=f"{dst} = None")
        elif isinstance(t, BoolType | IntType | StrType | LiteralType):
            self.scalar(t, src, dst, loc, indent)
        elif isinstance(t, ListType):
            item, out, index, before = self.fresh("item"), self.fresh("out"), self.fresh("i"), self.fresh("n")
            self.emit(indent, f"if type({src}) is list:")
            self.emit(indent + 1, f"{dst} = []")
            if t.min_length is not None:
                self.emit(indent + 1, f"{before} = len(errors)")
            self.emit(indent + 1, f"for {index}, {item} in enumerate({src}):")
            self.check(t.item, item, out, base, (*parts, index), indent + 2)
            self.emit(indent + 2, f"{dst}.append({out})")
            if t.min_length is not None:
                # pydantic-core checks the length only once every item validated.
                self.emit(indent + 1, f"if len(errors) == {before} and len({src}) < {t.min_length}:")
                ctx = f'{{"field_type": "List", "min_length": {t.min_length}, "actual_length": len({src})}}'
                self.error(indent + 2, "too_short", loc, src, ctx)
            self.emit(indent, "else:")
            self.emit(indent + 1, f"{dst} = None")
            self.error(indent + 1, "list_type", loc, src)
        elif isinstance(t, DictType):
            key, item, out = self.fresh("key"), self.fresh("item"), self.fresh("out")
            self.emit(indent, f"if type({src}) is dict:")
            self.emit(indent + 1, f"{dst} = {{}}")
            self.emit(indent + 1, f"for {key}, {item} in {src}.items():")
            if not isinstance(t.key, StrType) or t.key.pattern is not None:
                raise GenerationError("only plain string keys are supported in dicts")
            self.emit(indent + 2, f"if type({key}) is not str:")
            self.error(indent + 3, "string_type", self.loc(base, (*parts, key, repr("[key]"))), key)
            self.check(t.value, item, out, base, (*parts, key), indent + 2)
            self.emit(indent + 2, f"{dst}[{key}] = {out}")
            self.emit(indent, "else:")
            self.emit(indent + 1, f"{dst} = None")
            self.error(indent + 1, "dict_type", loc, src)
        else:  # pragma: no cover - the reader produces no other type
            raise GenerationError(f"cannot write a check for {t!r}")

    def scalar(self, t: Type, src: str, dst: str, loc: str, indent: int) -> None:
        if isinstance(t, LiteralType):
            values = self.constant("literal", t.values, f"frozenset({sorted(t.values)!r})")
            self.emit(indent, f"if type({src}) is str and {src} in {values}:")
            self.emit(indent + 1, f"{dst} = {src}")
            self.emit(indent, "else:")
            self.emit(indent + 1, f"{dst} = None")
            self.error(indent + 1, "literal_error", loc, src, f"{{'expected': {_literal_expected(t.values)!r}}}")
            return
        python_type = {BoolType: "bool", IntType: "int", StrType: "str"}[type(t)]
        self.emit(indent, f"if type({src}) is {python_type}:")
        self.emit(indent + 1, f"{dst} = {src}")
        if isinstance(t, IntType):
            if t.ge is not None:
                self.emit(indent + 1, f"if {src} < {t.ge}:")
                self.error(indent + 2, "greater_than_equal", loc, src, f"{{'ge': {t.ge}}}")
            if t.le is not None:
                self.emit(indent + 1, f"if {src} > {t.le}:")
                self.error(indent + 2, "less_than_equal", loc, src, f"{{'le': {t.le}}}")
        if isinstance(t, StrType) and t.pattern is not None:
            matcher = self.constant("pattern", t.pattern, f"_pattern.compile({t.pattern!r})")
            self.emit(indent + 1, f"if not {matcher}({src}):")
            self.error(indent + 2, "string_pattern_mismatch", loc, src, f"{{'pattern': {t.pattern!r}}}")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"{dst} = None")
        self.error(indent + 1, {"bool": "bool_type", "int": "int_type", "str": "string_type"}[python_type], loc, src)

    def rule_call(self, indent: int, call: str, loc: str, value: str, after: str) -> None:
        # pydantic turns a ValueError of a validator into a value_error, an AssertionError into an
        # assertion_error; anything else propagates.
        self.emit(indent, "try:")
        self.emit(indent + 1, call)
        self.emit(indent, "except (ValueError, AssertionError) as error:")
        kind = '"assertion_error" if isinstance(error, AssertionError) else "value_error"'
        self.emit(indent + 1, f'errors.append(({kind}, {loc}, {value}, {{"error": error}}))')
        self.emit(indent + 1, after)

    def model(self, model: Model) -> None:
        keys = self.constant("keys", model.name, f"frozenset({sorted(f.key for f in model.fields)!r})")
        self.emit(0, "")
        self.emit(0, "")
        self.emit(0, f"def _{model.name}(data: Any, loc: Loc, errors: list[Error], context: Context) -> Output:")
        self.emit(1, f'"""models.{model.doc}"""')
        self.emit(1, "if type(data) is not dict:")
        self.error(2, "model_type", "loc", "data", f"{{'class_name': {model.name!r}}}")
        self.emit(2, "return None")
        self.emit(1, "count = len(errors)")
        self.emit(1, "out: dict[str, Any] = {}")
        self.emit(1, "value: Any  # each field's in turn, and what it became (declared once: the type checker)")
        self.emit(1, "result: Any")
        for f in model.fields:
            parts = (repr(f.key),)
            if f.required:
                self.emit(1, f"value = data.get({f.key!r}, _MISSING)")
                self.emit(1, "if value is _MISSING:")
                self.error(2, "missing", self.loc("loc", parts), "data")
                self.emit(1, "else:")
                t = f.type
            elif isinstance(f.type, NullableType):
                # Absent or null: the default None, which model_dump(exclude_none=True) leaves out.
                self.emit(1, f"value = data.get({f.key!r})")
                self.emit(1, "if value is not None:")
                t = f.type.inner
            else:
                self.emit(1, f"value = data.get({f.key!r}, _MISSING)")
                self.emit(1, "if value is not _MISSING:")
                t = f.type
            self.check(t, "value", "result", "loc", parts, 2)
            self.emit(2, "if result is not None:")
            self.emit(3, f"out[{f.output_key!r}] = result")
        self.emit(1, "if len(data) > len(out):")
        self.emit(2, "for key, value in data.items():  # unknown keys are kept (config.md: Extensibility)")
        self.emit(3, f"if value is not None and key not in {keys}:")
        self.emit(4, "out[key] = value")
        self.emit(1, "if len(errors) != count:")
        self.emit(2, "return None")
        for rule in model.rules:
            self.rule_call(1, f"_rules.{rule}(out, context)", "loc", "data", after="return None")
        self.emit(1, "return out")

    def module(self, source_hash: str) -> str:
        for model in self.description.models.values():
            self.model(model)
        roots = []
        for public, name in self.description.roots.items():
            roots += [
                "",
                "",
                f"def validate_{public}(data: Any, context: Context) -> Result:",
                f'    """models.{name}: (the JSON object, None) if valid, else (None, the errors)."""',
                "    errors: list[Error] = []",
                f"    out = _{name}(data, (), errors, context)",
                "    return (None, errors) if errors else (out, errors)",
            ]
        header = _HEADER.format(source_hash=source_hash)
        return "\n".join([header, *_exported_lists(), *self.constant_lines, *self.lines, *roots, _FOOTER])


def _exported_lists() -> list[str]:
    """The spec's lists that runtime code outside validation reads, copied from engine.spec.constants' Literals
    (which import typing: too slow for create's path)."""
    from engine.spec import constants

    return [
        "# engine.spec.constants.SECCOMP_ARCHS, for engine/linux/seccomp.py",
        f"SECCOMP_ARCHS = {tuple(constants.SECCOMP_ARCHS)!r}",
    ]


_HEADER = '''\
# GENERATED by engine/spec/codegen.py from the pydantic models in engine/spec/models.py: do not edit.
# After changing models.py (or constants.py, or the generator), run `python -m engine.spec.codegen`;
# tests/unit/test_spec_compiled.py fails while this file is stale.
"""The validator the runtime uses for config.json, process.json and resources: the models' rules, compiled.

validate_spec / validate_process / validate_resources take a decoded JSON value and the validation context
and return (output, []) or (None, errors). The output is what the models' model_dump(by_alias=True,
exclude_none=True) gives; the errors are pydantic's, in pydantic's order, as (type, loc, input, ctx) tuples
(error_dicts() turns them into the dicts engine/spec/messages.py formats). Imports nothing heavy.
"""

# ruff: noqa
from __future__ import annotations

from engine.spec import pattern as _pattern
from engine.spec import rules as _rules

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Loc = tuple[str | int, ...]
    Error = tuple[str, Loc, Any, dict[str, Any] | None]
    Context = dict[str, Any]
    Output = dict[str, Any] | None
    Result = tuple[dict[str, Any] | None, list[Error]]

SOURCE_HASH = "{source_hash}"
_MISSING = object()
'''

_FOOTER = '''

def error_dicts(errors: list[Error]) -> list[dict[str, Any]]:
    """The errors as pydantic's ValidationError.errors() dicts (type, loc, input, ctx)."""
    return [{"type": kind, "loc": loc, "input": value, "ctx": ctx} for kind, loc, value, ctx in errors]
'''


# ---- writing the TypedDicts -------------------------------------------------------------------------------

TYPED_OUTPUT = HERE / "typed.py"


def _annotation(t: Type) -> str:
    """The Python type of what the compiled validator outputs for `t` (model_dump's JSON shape)."""
    if isinstance(t, AnyType):
        return "Any"
    if isinstance(t, BoolType):
        return "bool"
    if isinstance(t, IntType):
        return "int"
    if isinstance(t, StrType):
        return "str"
    if isinstance(t, LiteralType):
        return f"Literal[{', '.join(repr(v) for v in t.values)}]"
    if isinstance(t, ListType):
        return f"list[{_annotation(t.item)}]"
    if isinstance(t, DictType):
        return f"dict[{_annotation(t.key)}, {_annotation(t.value)}]"
    if isinstance(t, NullableType):
        return f"{_annotation(t.inner)} | None"
    if isinstance(t, RuleType):
        return _annotation(t.inner)
    return t.name


def _field_annotation(f: Field) -> str:
    # A field that is None is left out (exclude_none), so only a required, non-nullable field is always there.
    if isinstance(f.type, NullableType):
        return _annotation(f.type.inner)
    return f"Required[{_annotation(f.type)}]" if f.required else _annotation(f.type)


def render_typed(description: Description | None = None) -> str:
    """engine/spec/typed.py: a TypedDict per model, the shape of what engine.spec.document returns."""
    description = description or describe_models()
    lines = [_TYPED_HEADER.format(roots=", ".join(f"{k}: {v}" for k, v in description.roots.items()))]
    for model in description.models.values():
        lines += ["", ""]
        if all(f.output_key.isidentifier() and not keyword.iskeyword(f.output_key) for f in model.fields):
            lines.append(f"class {model.name}(TypedDict, total=False):")
            lines.append(f'    """models.{model.doc}"""')
            lines.append("")
            lines += [f"    {f.output_key}: {_field_annotation(f)}" for f in model.fields]
        else:  # a key that is no identifier (IOPriority's "class"): the functional form
            lines.append(f"{model.name} = TypedDict(")
            lines.append(f"    {model.name!r},")
            lines.append("    {")
            lines += [f"        {f.output_key!r}: {_field_annotation(f)!r}," for f in model.fields]
            lines.append("    },")
            lines.append("    total=False,")
            lines.append(")")
    return "\n".join(lines) + "\n"


_TYPED_HEADER = '''\
# GENERATED by engine/spec/codegen.py from the pydantic models in engine/spec/models.py: do not edit.
# After changing models.py, run `python -m engine.generate`; tests/unit/test_spec_compiled.py fails while this
# file is stale, and checks that the compiled validator's output has these shapes.
"""The validated documents' shapes, for readers and the type checker: one TypedDict per model.

The documents: {roots}.

What engine.spec.document returns (the models' model_dump(by_alias=True, exclude_none=True), made by
engine/spec/compiled.py): a field the document left out or set to null is absent, so only Required[...] keys
are always there. Unknown keys are kept in the output too (config.md: Extensibility) but not declared here.
Import it under TYPE_CHECKING only: `typing` costs the runtime milliseconds it does not need.
"""

from __future__ import annotations

from typing import Any, Literal, Required, TypedDict'''


def source_hash() -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (HERE / name).read_bytes() + b"\0")
    return digest.hexdigest()


def generate() -> str:
    return Writer(describe_models()).module(source_hash())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if engine/spec/compiled.py is stale")
    args = parser.parse_args(argv)
    text = generate()
    current = OUTPUT.read_text() if OUTPUT.exists() else ""
    if args.check:
        if current != text:
            print(f"{OUTPUT} is stale: run python -m engine.spec.codegen", file=sys.stderr)
            return 1
        return 0
    if current != text:
        OUTPUT.write_text(text)
        print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
