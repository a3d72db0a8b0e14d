"""The few regular expressions of the spec models, matched without `re` (create imports neither re nor enum).

A small subset of pydantic-core's regex syntax (the Rust `regex` crate, with search semantics as pydantic
applies a `pattern`): `^` and `$` anchors (start and end of the whole text; `$` does not match before a final
newline as Python's does), literal characters, `\\` escapes of punctuation and `\\n \\t \\r`, character classes
`[...]`/`[^...]` with ranges, and the quantifiers `?`, `*`, `+` on one atom. compile() refuses anything else
(groups, alternation, `.`, counted repetition, `\\d`-style classes whose Unicode meaning would differ), so a
model that needs more makes engine/spec/codegen.py fail instead of matching differently. Matching simulates
the automaton (a set of positions), so it is linear in the text whatever the pattern.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
# Meta characters, the only punctuation escaped here (the Rust crate accepts a few more; no model uses them).
_PUNCTUATION = frozenset("\\.+*?()|[]{}^$-#&~")


class Atom:
    """One character test; `repeat` is True for a starred atom (x+ is kept as x followed by x*)."""

    __slots__ = ("negated", "optional", "ranges", "repeat")

    def __init__(self, ranges: tuple[tuple[str, str], ...], negated: bool) -> None:
        self.ranges = ranges
        self.negated = negated
        self.optional = False
        self.repeat = False

    def matches(self, char: str) -> bool:
        inside = False
        for low, high in self.ranges:
            if low <= char <= high:
                inside = True
                break
        return inside != self.negated

    def copy(self) -> Atom:
        return Atom(self.ranges, self.negated)


def _escape(pattern: str, i: int) -> tuple[str, int]:
    """The character escaped at pattern[i] (just after a backslash), and the index after it."""
    if i >= len(pattern):
        raise ValueError(f"pattern {pattern!r}: a trailing backslash")
    char = pattern[i]
    if char in _ESCAPES:
        return _ESCAPES[char], i + 1
    if char in _PUNCTUATION:
        return char, i + 1
    raise ValueError(f"pattern {pattern!r}: the escape \\{char} is not supported")


def _char_class(pattern: str, i: int) -> tuple[Atom, int]:
    """The class starting after '[' at pattern[i]."""
    negated = pattern.startswith("^", i)
    i += negated
    ranges: list[tuple[str, str]] = []
    first = True
    while True:
        if i >= len(pattern):
            raise ValueError(f"pattern {pattern!r}: an unterminated character class")
        char = pattern[i]
        if char == "]" and not first:
            return Atom(tuple(ranges), negated), i + 1
        if char == "[" or pattern.startswith("&&", i) or pattern.startswith("--", i) or pattern.startswith("~~", i):
            raise ValueError(f"pattern {pattern!r}: nested classes and class operations are not supported")
        if char == "\\":
            low, i = _escape(pattern, i + 1)
        else:
            low, i = char, i + 1
        first = False
        if pattern.startswith("-", i) and i + 1 < len(pattern) and pattern[i + 1] != "]":
            if pattern[i + 1] == "\\":
                high, i = _escape(pattern, i + 2)
            else:
                high, i = pattern[i + 1], i + 2
            if high < low:
                raise ValueError(f"pattern {pattern!r}: the range {low}-{high} is empty")
            ranges.append((low, high))
        else:
            ranges.append((low, low))


def parse(pattern: str) -> tuple[bool, list[Atom], bool]:
    """(anchored at the start, atoms, anchored at the end), or ValueError for what this subset lacks."""
    start = end = False
    atoms: list[Atom] = []
    body = pattern
    i = 0
    while i < len(body):
        char = body[i]
        if char == "^" and i == 0:
            start, i = True, 1
            continue
        if char == "$" and i == len(body) - 1:
            end, i = True, i + 1
            continue
        if char == "[":
            atom, i = _char_class(body, i + 1)
        elif char == "\\":
            literal, i = _escape(body, i + 1)
            atom = Atom(((literal, literal),), False)
        elif char in "?*+":
            if not atoms or atoms[-1].optional or atoms[-1].repeat:
                raise ValueError(f"pattern {pattern!r}: a quantifier must follow a single character or class")
            if i + 1 < len(body) and body[i + 1] in "?*+":
                raise ValueError(f"pattern {pattern!r}: lazy or possessive quantifiers are not supported")
            last = atoms[-1]
            if char == "?":
                last.optional = True
            elif char == "*":
                last.optional = last.repeat = True
            else:
                tail = last.copy()
                tail.optional = tail.repeat = True
                atoms.append(tail)
            i += 1
            continue
        elif char in ".()|{}^$":
            raise ValueError(f"pattern {pattern!r}: {char!r} is not supported")
        else:
            atom, i = Atom(((char, char),), False), i + 1
        atoms.append(atom)
    return start, atoms, end


def compile(pattern: str) -> Callable[[str], bool]:
    """A function telling whether a text matches `pattern` (search semantics: anywhere, unless anchored)."""
    anchored_start, atoms, anchored_end = parse(pattern)
    count = len(atoms)

    def closure(positions: set[int]) -> set[int]:
        # Positions reachable without reading a character: skipping optional atoms.
        done = set()
        todo = list(positions)
        while todo:
            i = todo.pop()
            if i in done:
                continue
            done.add(i)
            if i < count and atoms[i].optional:
                todo.append(i + 1)
        return done

    def search(text: str) -> bool:
        positions = closure({0})
        if count in positions and not anchored_end:
            return True
        for char in text:
            following = set()
            for i in positions:
                if i < count and atoms[i].matches(char):
                    following.add(i if atoms[i].repeat else i + 1)
            if not anchored_start:
                following.add(0)  # a match may also begin at the next character
            positions = closure(following)
            if not positions:
                return False
            if count in positions and not anchored_end:
                return True
        return count in positions

    return search
