"""Rendering the results: the Markdown table, the goals, the import-time summary, and the README block.

Kept free of subprocesses and root so tests/unit/test_bench.py can check every piece on made-up numbers.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.stats import Summary, median, ratio

# README.md: the benchmark owns only the text between these markers (the rest of the README has another owner).
START_MARKER = "<!-- bench:start -->"
END_MARKER = "<!-- bench:end -->"
# What the README held before the first --write-readme: replaced once by the markers and the table.
PLACEHOLDER = "PERF_TABLE_PLACEHOLDER"
SECTION = "## Performance"


@dataclass(frozen=True)
class Row:
    """One line of the table: an operation measured on each runtime (pip: the pip-installed engine, if measured)."""

    key: str  # stable name used by the goals ("run", "state", ...)
    label: str  # what the reader sees
    engine: Summary
    runc: Summary
    pip: Summary | None = None

    @property
    def ratio(self) -> float:
        return ratio(self.engine.median, self.runc.median)


@dataclass(frozen=True)
class Goal:
    """engine's median must be at most `limit` times the median of `against` ("runc", or "floor": the bare
    interpreter `python -S -I -c pass`) for the operation `key`."""

    key: str
    limit: float
    against: str = "runc"
    moonshot: float | None = None


# The targets (#11): hot commands against the interpreter's own start, the rest against runc.
GOALS = (
    Goal("state", 1.3, "floor", 1.1),
    Goal("kill", 1.3, "floor", 1.1),
    Goal("delete", 1.3, "floor", 1.1),
    Goal("start", 1.3, "floor", 1.1),
    Goal("create", 2.0, "runc", 1.3),
    Goal("run", 2.0, "runc", 1.2),
    Goal("lifecycle", 2.0, "runc", 1.2),
    Goal("list1000", 1.0, "runc", 0.5),
    Goal("concurrent", 2.0, "runc", 1.3),
)
HOT = ("state", "kill", "delete", "start")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def spread(summary: Summary) -> str:
    return f"{ms(summary.p10)}-{ms(summary.p90)}"


def format_ratio(value: float) -> str:
    return "∞" if value == float("inf") else f"{value:.2f}x"


def markdown_table(rows: Sequence[Row]) -> str:
    with_pip = any(row.pip is not None for row in rows)
    head = "| operation | engine median (ms) | engine p10-p90 |"
    rule = "|---|--:|--:|"
    if with_pip:
        head += " pip-installed engine (ms) |"
        rule += "--:|"
    head += " runc median (ms) | runc p10-p90 | engine/runc |"
    rule += "--:|--:|--:|"
    if with_pip:
        head += " pip engine/runc |"
        rule += "--:|"
    lines = [head, rule]
    for row in rows:
        line = f"| {row.label} | {ms(row.engine.median)} | {spread(row.engine)} |"
        if with_pip:
            line += f" {ms(row.pip.median) if row.pip else '-'} |"
        line += f" {ms(row.runc.median)} | {spread(row.runc)} | {format_ratio(row.ratio)} |"
        if with_pip:
            line += f" {format_ratio(ratio(row.pip.median, row.runc.median)) if row.pip else '-'} |"
        lines.append(line)
    return "\n".join(lines)


def floor_table(rows: Sequence[Row], floor: Summary) -> str:
    """The hot commands against the bare interpreter's start (same interpreter, same rounds)."""
    by_key = {row.key: row for row in rows}
    with_pip = any(by_key[k].pip is not None for k in HOT if k in by_key)
    head = "| hot command | engine / interpreter |" + (" pip engine / interpreter |" if with_pip else "")
    head += " runc / interpreter | target |"
    lines = [head, "|---|--:|" + ("--:|" if with_pip else "") + "--:|---|"]
    for key in HOT:
        row = by_key.get(key)
        if row is None:
            continue
        line = f"| {row.label} | {format_ratio(ratio(row.engine.median, floor.median))} |"
        if with_pip:
            pip = format_ratio(ratio(row.pip.median, floor.median)) if row.pip else "-"
            line += f" {pip} |"
        line += f" {format_ratio(ratio(row.runc.median, floor.median))} | <= 1.3x (moonshot 1.1x) |"
        lines.append(line)
    return "\n".join(lines)


def goal_results(
    rows: Sequence[Row], floor: Summary | None = None, goals: Iterable[Goal] = GOALS
) -> list[tuple[Goal, float | None, bool]]:
    """(goal, measured ratio, met) per goal; a goal whose operation was not measured is (goal, None, False)."""
    by_key = {row.key: row for row in rows}
    results: list[tuple[Goal, float | None, bool]] = []
    for goal in goals:
        row = by_key.get(goal.key)
        base = (floor.median if floor else None) if goal.against == "floor" else (row.runc.median if row else None)
        if row is None or base is None:
            results.append((goal, None, False))
            continue
        measured = ratio(row.engine.median, base)
        results.append((goal, measured, measured <= goal.limit))
    return results


def goals_line(rows: Sequence[Row], floor: Summary | None = None, goals: Iterable[Goal] = GOALS) -> str:
    parts = []
    for goal, measured, met in goal_results(rows, floor, goals):
        against = "the interpreter" if goal.against == "floor" else "runc"
        target = f"{goal.key} <= {goal.limit:g}x {against}"
        if measured is None:
            parts.append(f"{target}: not measured")
        else:
            parts.append(f"{target}: {'**met**' if met else '**not met**'} ({format_ratio(measured)})")
    return "Targets of issue #11 (ratio of medians): " + "; ".join(parts) + "."


# ---- python -X importtime ----------------------------------------------------------------------------------

# "import time:       806 |        806 |   encodings.aliases": self and cumulative in microseconds, then the
# module indented by two spaces per nesting level.
_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)\s*$")


@dataclass(frozen=True)
class ImportEntry:
    name: str
    self_us: float
    cumulative_us: float
    parent: str | None  # the module whose import caused this one (None: imported by the program itself)


def parse_importtime(stderr: str) -> list[ImportEntry]:
    """The entries of `python -X importtime` output, other stderr lines ignored.

    The output is in post-order: a module's line comes after those of the modules it imported, which are
    indented one level deeper. So a line's parent is the next line that is one level shallower.
    """
    raw: list[tuple[str, int, int, int]] = []
    for line in stderr.splitlines():
        m = _IMPORTTIME.match(line)
        if m:
            depth = (len(m[3]) - 1) // 2
            raw.append((m[4], int(m[1]), int(m[2]), depth))
    entries = []
    for i, (name, self_us, cumulative_us, depth) in enumerate(raw):
        parent = next((later[0] for later in raw[i + 1 :] if later[3] < depth), None)
        entries.append(ImportEntry(name, self_us, cumulative_us, parent))
    return entries


def median_entries(runs: Sequence[Sequence[ImportEntry]]) -> list[ImportEntry]:
    """One entry per module with the median self/cumulative time over several runs (one run is too noisy
    here); the order and parent are those of the first run the module appeared in."""
    selfs: dict[str, list[float]] = defaultdict(list)
    cumulatives: dict[str, list[float]] = defaultdict(list)
    first: dict[str, ImportEntry] = {}
    for run in runs:
        for entry in run:
            selfs[entry.name].append(entry.self_us)
            cumulatives[entry.name].append(entry.cumulative_us)
            first.setdefault(entry.name, entry)
    return [
        ImportEntry(name, median(selfs[name]), median(cumulatives[name]), entry.parent) for name, entry in first.items()
    ]


def total_import_us(entries: Iterable[ImportEntry]) -> float:
    # Sum of self times: cumulative times nest, so summing them would count a module once per ancestor.
    return sum(entry.self_us for entry in entries)


def top_cumulative(entries: Iterable[ImportEntry], n: int = 5) -> list[ImportEntry]:
    return sorted(entries, key=lambda entry: entry.cumulative_us, reverse=True)[:n]


def by_package(entries: Iterable[ImportEntry]) -> list[tuple[str, float]]:
    """Self time per top-level package (engine.spec.models -> engine), largest first: the answer to "which
    dependency costs what" without the double counting of cumulative times."""
    totals: dict[str, float] = defaultdict(float)
    for entry in entries:
        totals[entry.name.split(".")[0]] += entry.self_us
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)


def import_summary_line(command: str, entries: Sequence[ImportEntry], runs: int, profiled_wall: float) -> str:
    """One Markdown bullet: the share of imports in the command, the top 5 cumulative imports and the
    costliest packages. The share is taken against the wall time of the same -X importtime runs: importtime
    slows imports down, so comparing with the benchmark's own medians would overstate it."""
    total = total_import_us(entries) / 1000
    share = f" ({total / (profiled_wall * 1000):.0%})" if profiled_wall > 0 else ""
    top = ", ".join(f"`{e.name}` {e.cumulative_us / 1000:.0f}" for e in top_cumulative(entries))
    packages = ", ".join(f"{name} {us / 1000:.0f}" for name, us in by_package(entries)[:5])
    return (
        f"- `engine {command}`: {total:.0f} of {profiled_wall * 1000:.0f} ms are imports{share} "
        f"(medians of {runs} runs). Top 5 cumulative: {top}. Self time by package: {packages}."
    )


def floor_line(floor: Summary, rows: Sequence[Row], goals: Iterable[Goal] = GOALS) -> str:
    """The floor in ms, and how much room each hot command's target leaves above it."""
    budgets = [
        f"{goal.key} {ms(goal.limit * floor.median)} ms"
        for goal in goals
        if goal.against == "floor" and any(row.key == goal.key for row in rows)
    ]
    text = (
        f"The interpreter's floor, `python -S -I -c pass` with engine's interpreter, takes {ms(floor.median)} ms "
        f"(p10-p90 {spread(floor)}) in the same rounds"
    )
    return text + ("; <= 1.3x allows " + ", ".join(budgets) if budgets else "") + "."


def import_detail(command: str, entries: Sequence[ImportEntry], n: int = 15) -> str:
    """The --profile listing: the n costliest imports by cumulative time, with what imported them."""
    lines = [f"engine {command}: {total_import_us(entries) / 1000:.1f} ms of imports (sum of self times)"]
    lines.append(f"  {'cumulative ms':>13} {'self ms':>8}  module  (imported by; none: by the script, or lazily)")
    for entry in top_cumulative(entries, n):
        by = f"  ({entry.parent})" if entry.parent else ""
        lines.append(f"  {entry.cumulative_us / 1000:13.1f} {entry.self_us / 1000:8.1f}  {entry.name}{by}")
    packages = by_package(entries)[:n]
    lines.append("  self time by package (ms): " + ", ".join(f"{k} {v / 1000:.1f}" for k, v in packages))
    return "\n".join(lines)


# ---- README -------------------------------------------------------------------------------------------------


class ReadmeError(Exception):
    """The README is not shaped as expected: we refuse to guess where to write."""


def _section_of(text: str, position: int) -> str | None:
    """The last `## ` heading before `position`: the section this part of the README belongs to."""
    headings = [m for m in re.finditer(r"^## .*$", text[:position], flags=re.MULTILINE)]
    return headings[-1].group(0).strip() if headings else None


def replace_block(text: str, body: str) -> str:
    """The README text with the benchmark block (markers included) holding `body`.

    The markers are replaced if present, otherwise the PLACEHOLDER line (first run). Either must sit in the
    Performance section and be unambiguous; anything else is a ReadmeError, and text outside the block is
    never touched.
    """
    block = f"{START_MARKER}\n{body.strip()}\n{END_MARKER}"
    starts, ends = text.count(START_MARKER), text.count(END_MARKER)
    if starts or ends:
        if starts != 1 or ends != 1:
            raise ReadmeError(f"expected one {START_MARKER} and one {END_MARKER}, found {starts} and {ends}")
        begin = text.index(START_MARKER)
        end = text.index(END_MARKER)
        if end < begin:
            raise ReadmeError(f"{END_MARKER} comes before {START_MARKER}")
        where = begin
        new = text[:begin] + block + text[end + len(END_MARKER) :]
    else:
        found = [m for m in re.finditer(rf"^[ \t]*{PLACEHOLDER}[ \t]*$", text, flags=re.MULTILINE)]
        if len(found) != 1:
            raise ReadmeError(f"expected one line {PLACEHOLDER} (or the bench markers), found {len(found)}")
        where = found[0].start()
        new = text[: found[0].start()] + block + text[found[0].end() :]
    section = _section_of(text, where)
    if section != SECTION:
        raise ReadmeError(f"the benchmark block must be in the {SECTION!r} section, found it in {section!r}")
    return new


def write_readme(path: Path, body: str) -> None:
    """Replace the block in place. The file is read right before writing (others edit the README too) and
    replaced atomically, so a concurrent reader sees the old or the new README, never half of it."""
    text = path.read_text()
    new = replace_block(text, body)
    if new == text:
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
