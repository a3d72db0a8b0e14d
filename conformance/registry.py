"""The check registry: every check names the spec file, section and the exact sentences it proves.

Sentences are quoted as rendered text (markdown links, bold and code marks removed, whitespace collapsed)
so that they read like the spec and can still be verified mechanically against the markdown source:
`verify_sentences()` fails on any quote that is not verbatim in the named file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conformance.harness import Ctx


class CheckFailed(Exception):
    """The runtime did something the quoted sentence forbids; str() is the one-line reason."""


class CheckSkipped(Exception):
    """The check cannot be judged here (missing host feature, unsupported precondition)."""


# A check returns an optional short note shown in the PASS row, or raises one of the above.
CheckFunc = Callable[["Ctx"], "str | None"]


@dataclass(frozen=True)
class Check:
    name: str
    spec_file: str
    section: str
    sentences: tuple[str, ...]
    func: CheckFunc
    module: str

    @property
    def where(self) -> str:
        return f"{self.spec_file} {self.section}"


CHECKS: list[Check] = []


def check(spec_file: str, section: str, *sentences: str) -> Callable[[CheckFunc], CheckFunc]:
    """Register a check. `section` is the heading in `spec_file`; `sentences` are quoted verbatim."""
    if not sentences:
        raise ValueError("a check must quote at least one spec sentence")

    def register(func: CheckFunc) -> CheckFunc:
        name = func.__name__
        if any(c.name == name for c in CHECKS):
            raise ValueError(f"duplicate check name {name}")
        CHECKS.append(Check(name, spec_file, section, tuple(sentences), func, func.__module__))
        return func

    return register


def expect(condition: object, reason: str) -> None:
    """Fail the current check with `reason` unless `condition` holds."""
    if not condition:
        raise CheckFailed(reason)


_LINK = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\[[^\]]*\])")


def render_markdown(text: str) -> str:
    """Markdown source to the plain sentence text a reader sees: links -> their text, no emphasis/code marks."""
    text = _LINK.sub(r"\1", text)
    text = re.sub(r"<a name=\"[^\"]*\" */>", "", text)
    text = text.replace("**", "").replace("`", "")
    return re.sub(r"\s+", " ", text)


def verify_sentences(spec_dir: Path, checks: list[Check] | None = None) -> list[str]:
    """Return one problem line per quoted sentence that is not verbatim in its spec file (empty = all good)."""
    problems: list[str] = []
    rendered: dict[str, tuple[str, set[str]]] = {}
    for chk in checks if checks is not None else CHECKS:
        if chk.spec_file not in rendered:
            path = spec_dir / chk.spec_file
            if not path.is_file():
                problems.append(f"{chk.name}: spec file {path} not found")
                rendered[chk.spec_file] = ("", set())
                continue
            source = path.read_text()
            headings = {
                render_markdown(line.lstrip("#")).strip() for line in source.splitlines() if line.startswith("#")
            }
            rendered[chk.spec_file] = (render_markdown(source), headings)
        text, headings = rendered[chk.spec_file]
        if not text:
            continue
        if chk.section not in headings:
            problems.append(f"{chk.name}: section {chk.section!r} is not a heading of {chk.spec_file}")
        for sentence in chk.sentences:
            if sentence not in text:
                problems.append(f"{chk.name}: not verbatim in {chk.spec_file}: {sentence!r}")
    return problems
