"""A mypy plugin (pyproject.toml [tool.mypy] plugins): `td.get("key")` on a TypedDict that declares no such key is
an error, as `td["key"]` already is. (`"key" in td` is not covered: mypy discards what a plugin reports there.)

The same for the helpers of engine/cgroups/values.py, which read a linux.resources field by name with a one-line
error for a document built by hand: number(mem, "limit", w) and byte_limit(...) must name a field of mem's
TypedDict, and section(res, "memory", w) is typed as that field (Memory), not as the helper's Mapping[str, Any].

mypy itself types td.get("misspelled") as `object` without a word, so `if linux.get("maskPaths"):` passes
--strict although linux.maskedPaths is never read. The readers of the validated config read optional fields
with .get (engine/spec/typed.py: a field left out is absent), so a misspelled name there must fail the type
check (tests/unit/test_typecheck.py) too.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.errorcodes import TYPEDDICT_ITEM
from mypy.nodes import Expression
from mypy.plugin import FunctionContext, MethodContext, Plugin
from mypy.plugins.default import typed_dict_get_callback
from mypy.typeops import try_getting_str_literals
from mypy.types import Type, TypedDictType, get_proper_type

# engine/cgroups/values.py's helpers (section, key, where): whether the result is the field itself (section).
KEYED_HELPERS = {
    "engine.cgroups.values.number": False,
    "engine.cgroups.values.byte_limit": False,
    "engine.cgroups.values.section": True,
}


def _known_keys(ctx: MethodContext | FunctionContext, typed_dict: Type, key: Expression, key_type: Type) -> list[str]:
    """The keys a string literal (or a Literal-typed value) names, if the TypedDict declares them all; an error
    for each it does not declare. Nothing for a plain str: mypy cannot know which key that is."""
    typed_dict = get_proper_type(typed_dict)
    keys = try_getting_str_literals(key, key_type) if isinstance(typed_dict, TypedDictType) else None
    if not isinstance(typed_dict, TypedDictType) or keys is None:
        return []
    unknown = [k for k in keys if k not in typed_dict.items]
    for k in unknown:
        name = typed_dict.fallback.type.name
        ctx.api.fail(f'TypedDict "{name}" has no key "{k}"', ctx.context, code=TYPEDDICT_ITEM)
    return [] if unknown else keys


def _check_key(ctx: MethodContext) -> None:
    if ctx.args and len(ctx.args[0]) == 1:
        _known_keys(ctx, ctx.type, ctx.args[0][0], ctx.arg_types[0][0])


def _checked_helper(ctx: FunctionContext, returns_field: bool) -> Type:
    if len(ctx.args) > 1 and len(ctx.args[0]) == 1 and len(ctx.args[1]) == 1:
        typed_dict = get_proper_type(ctx.arg_types[0][0])
        keys = _known_keys(ctx, typed_dict, ctx.args[1][0], ctx.arg_types[1][0])
        if len(keys) == 1 and returns_field and isinstance(typed_dict, TypedDictType):
            return typed_dict.items[keys[0]]
    return ctx.default_return_type


def _checked_get(ctx: MethodContext) -> Type:
    _check_key(ctx)
    return typed_dict_get_callback(ctx)  # the return type, as mypy's own plugin infers it


class TypedDictKeys(Plugin):
    def get_method_hook(self, fullname: str) -> Callable[[MethodContext], Type] | None:
        return _checked_get if fullname == "typing.Mapping.get" else None

    def get_function_hook(self, fullname: str) -> Callable[[FunctionContext], Type] | None:
        if fullname not in KEYED_HELPERS:
            return None
        returns_field = KEYED_HELPERS[fullname]
        return lambda ctx: _checked_helper(ctx, returns_field)


def plugin(version: str) -> type[Plugin]:
    return TypedDictKeys
