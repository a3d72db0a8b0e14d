"""Record classes (fields, __init__, __eq__, __repr__, frozen) without the dataclasses module.

`dataclasses` imports inspect, and with it ast, dis, tokenize and linecache: ~6 ms of every `engine create`
on a quiet machine, for a handful of small classes on the create path. The container's init cannot import
lazily (tests/integration/test_late_imports.py: nothing after pivot_root), so the create path avoids it
altogether. `record` covers what engine uses: annotated fields in order (a base record's first), plain
defaults, `field(default_factory=...)`, `frozen=True` (and then hashable), `replace` and `field_names`.
The type checker sees a dataclass (PEP 681 dataclass_transform).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform, overload

    _C = TypeVar("_C", bound=type)
    _T = TypeVar("_T")
else:

    def dataclass_transform(**_kw):
        return lambda decorated: decorated


class FrozenRecordError(AttributeError):
    """An assignment to a field of a frozen record."""


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], object]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], _T]) -> _T:
    """A field whose default is made afresh for each instance (a list, a dict)."""
    return _Factory(default_factory)  # type: ignore[return-value]


def field_names(record_or_class: object) -> tuple[str, ...]:
    """The record's fields, in __init__'s order."""
    names: tuple[str, ...] = record_or_class.__record_fields__  # type: ignore[attr-defined]
    return names


def replace(obj: _T, **changes: Any) -> _T:
    """A copy of the record `obj` with `changes` applied (as dataclasses.replace)."""
    values = {name: getattr(obj, name) for name in field_names(obj)}
    values.update(changes)
    return type(obj)(**values)


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise FrozenRecordError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenRecordError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")


def _build(cls: _C, frozen: bool) -> _C:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        for name in klass.__dict__.get("__record_fields__", ()) if klass is not cls else ():
            if name not in names:
                names.append(name)
    own = [name for name in cls.__dict__.get("__annotations__", {}) if name not in names]  # noqa: RUF063 (strings)
    names += [name for name in own if not str(cls.__annotations__[name]).startswith("ClassVar")]
    defaults: dict[str, object] = {}
    for klass in cls.__mro__:
        for name in names:
            if name not in defaults and name in klass.__dict__ and klass is not object:
                defaults[name] = klass.__dict__[name]
    namespace: dict[str, object] = {"_object_setattr": object.__setattr__}
    params, body = [], []
    for name in names:
        default = defaults.get(name, _Factory)
        if default is _Factory:
            params.append(name)
            value = name
        elif isinstance(default, _Factory):
            namespace[f"_make_{name}"] = default.make
            params.append(f"{name}=_Factory")
            value = f"_make_{name}() if {name} is _Factory else {name}"
            if name in cls.__dict__:
                delattr(cls, name)
        else:
            namespace[f"_default_{name}"] = default
            params.append(f"{name}=_default_{name}")
            value = name
        body.append(f"_object_setattr(self, {name!r}, {value})" if frozen else f"self.{name} = {value}")
    namespace["_Factory"] = _Factory
    source = f"def __init__(self, {', '.join(params)}):\n    " + ("\n    ".join(body) or "pass") + "\n"
    source = source.replace("(self, )", "(self)")
    exec(source, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"  # type: ignore[attr-defined]
    cls.__init__ = init  # type: ignore[misc]
    cls.__record_fields__ = tuple(names)  # type: ignore[attr-defined]

    def __eq__(self: object, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in names)

    def __repr__(self: object) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__qualname__}({inner})"

    cls.__eq__ = __eq__  # type: ignore[assignment,method-assign]
    cls.__repr__ = __repr__  # type: ignore[assignment,method-assign]
    if frozen:

        def __hash__(self: object) -> int:
            return hash(tuple(getattr(self, name) for name in names))

        cls.__hash__ = __hash__  # type: ignore[assignment,method-assign]
        cls.__setattr__ = _frozen_setattr  # type: ignore[assignment,method-assign]
        cls.__delattr__ = _frozen_delattr  # type: ignore[assignment,method-assign]
    else:
        cls.__hash__ = None  # type: ignore[assignment]  # mutable and compared by value, as a dataclass
    return cls


if TYPE_CHECKING:

    @overload
    def record(cls: _C, /) -> _C: ...
    @overload
    def record(*, frozen: bool = False) -> Callable[[_C], _C]: ...


@dataclass_transform(field_specifiers=(field,))
def record(cls: Any = None, /, *, frozen: bool = False) -> Any:
    """Make `cls` a record: `@record` or `@record(frozen=True)`."""
    if cls is None:
        return lambda decorated: _build(decorated, frozen)
    return _build(cls, frozen)
