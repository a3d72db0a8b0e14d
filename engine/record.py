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


def _make_init(qualname: str, names: tuple[str, ...], defaults: dict[str, object], frozen: bool) -> Callable[..., None]:
    """__init__(self, *fields in order, **fields by name), with the errors Python gives for a plain function.

    One generic function, not source text compiled per class as dataclasses does: exec() costs ~70 us a class,
    ~1.5 ms of `engine create` for its ~20 records; a record is made a few times per command, where the extra
    microsecond per call does not show."""
    count = len(names)

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        if len(args) > count:
            raise TypeError(f"{qualname}() takes {count} positional arguments but {len(args)} were given")
        assign = object.__setattr__ if frozen else setattr
        for name, value in zip(names, args, strict=False):  # len(args) <= count: checked above
            if name in kwargs:
                raise TypeError(f"{qualname}() got multiple values for argument {name!r}")
            assign(self, name, value)
        for name in names[len(args) :]:
            if name in kwargs:
                value = kwargs.pop(name)
            elif name in defaults:
                default = defaults[name]
                value = default.make() if isinstance(default, _Factory) else default
            else:
                raise TypeError(f"{qualname}() missing required argument: {name!r}")
            assign(self, name, value)
        if kwargs:
            raise TypeError(f"{qualname}() got an unexpected keyword argument {next(iter(kwargs))!r}")

    __init__.__qualname__ = f"{qualname}.__init__"
    return __init__


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
    for name, default in defaults.items():
        if isinstance(default, _Factory) and name in cls.__dict__:
            delattr(cls, name)  # the class attribute would shadow nothing useful: each instance gets its own
    cls.__init__ = _make_init(cls.__qualname__, tuple(names), defaults, frozen)  # type: ignore[misc]
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
