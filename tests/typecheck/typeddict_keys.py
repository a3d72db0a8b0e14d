"""A mypy plugin (pyproject.toml [tool.mypy] plugins): `td.get("key")` on a TypedDict that declares no such key is
an error, as `td["key"]` already is. (`"key" in td` is not covered: mypy discards what a plugin reports there.)

mypy itself types td.get("misspelled") as `object` without a word, so `if linux.get("maskPaths"):` passes
--strict although linux.maskedPaths is never read. The readers of the validated config read optional fields
with .get (engine/spec/typed.py: a field left out is absent), so a misspelled name there must fail the type
check (tests/unit/test_typecheck.py) too.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.errorcodes import TYPEDDICT_ITEM
from mypy.nodes import StrExpr
from mypy.plugin import MethodContext, Plugin
from mypy.plugins.default import typed_dict_get_callback
from mypy.types import Type, TypedDictType, get_proper_type


def _check_key(ctx: MethodContext) -> None:
    typed_dict = get_proper_type(ctx.type)
    if isinstance(typed_dict, TypedDictType) and ctx.args and len(ctx.args[0]) == 1:
        key = ctx.args[0][0]
        if isinstance(key, StrExpr) and key.value not in typed_dict.items:
            name = typed_dict.fallback.type.name
            ctx.api.fail(f'TypedDict "{name}" has no key "{key.value}"', ctx.context, code=TYPEDDICT_ITEM)


def _checked_get(ctx: MethodContext) -> Type:
    _check_key(ctx)
    return typed_dict_get_callback(ctx)  # the return type, as mypy's own plugin infers it


class TypedDictKeys(Plugin):
    def get_method_hook(self, fullname: str) -> Callable[[MethodContext], Type] | None:
        return _checked_get if fullname == "typing.Mapping.get" else None


def plugin(version: str) -> type[Plugin]:
    return TypedDictKeys
