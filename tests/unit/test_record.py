"""engine.record: records behave as dataclasses do where engine relies on it (one generic __init__, no exec)."""

from __future__ import annotations

import pytest

from engine.record import FrozenRecordError, field, field_names, record, replace


@record
class Point:
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)


@record(frozen=True)
class Frozen:
    name: str
    size: int = 1


@record
class Point3(Point):
    z: int = 0


def test_positional_keyword_and_defaults() -> None:
    assert Point(1) == Point(x=1, y=0, tags=[])
    p = Point(1, 2, ["a"])
    assert (p.x, p.y, p.tags) == (1, 2, ["a"])
    assert Point(y=5, x=3) == Point(3, 5)
    assert repr(Point(1)) == "Point(x=1, y=0, tags=[])"


def test_each_instance_gets_a_fresh_default() -> None:
    a, b = Point(1), Point(1)
    a.tags.append("mine")
    assert b.tags == [] and "tags" not in Point.__dict__


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Point(), r"Point\(\) missing required argument: 'x'"),
        (lambda: Point(1, 2, [], 4), r"Point\(\) takes 3 positional arguments but 4 were given"),
        (lambda: Point(1, x=2), r"Point\(\) got multiple values for argument 'x'"),
        (lambda: Point(1, colour="red"), r"Point\(\) got an unexpected keyword argument 'colour'"),
    ],
)
def test_the_errors_of_a_plain_function(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match=message):
        make()


def test_frozen_records_refuse_assignment_and_hash() -> None:
    f = Frozen("a")
    with pytest.raises(FrozenRecordError):
        f.size = 2  # type: ignore[misc]
    assert hash(f) == hash(Frozen("a", 1)) and replace(f, size=3) == Frozen("a", 3)


def test_a_subclass_takes_the_base_fields_first() -> None:
    assert field_names(Point3) == ("x", "y", "tags", "z")
    assert Point3(1, 2, [], 3).z == 3
    assert Point3.__init__.__qualname__ == "Point3.__init__"
