"""bench/: the statistics, the table, the goals, the importtime parsing and the README block (no root)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

# bench/ is a directory of the repo, not an installed package: make it importable however pytest was started.
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import report  # noqa: E402
from bench.run import profile_schedule  # noqa: E402
from bench.stats import Summary, median, percentile, ratio  # noqa: E402

# ---- stats --------------------------------------------------------------------------------------------------


def test_percentile_interpolates_between_ranks() -> None:
    samples = [10.0, 20.0, 30.0, 40.0, 50.0]
    assert percentile(samples, 0) == 10
    assert percentile(samples, 100) == 50
    assert percentile(samples, 50) == 30
    assert percentile(samples, 10) == pytest.approx(14.0)  # 0.4 of the way from 10 to 20
    assert percentile(samples, 90) == pytest.approx(46.0)


def test_percentile_does_not_depend_on_order() -> None:
    assert percentile([5.0, 1.0, 3.0], 50) == percentile([1.0, 3.0, 5.0], 50) == 3


def test_median_of_even_count_is_the_mean_of_the_middle_two() -> None:
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5


def test_percentile_single_sample() -> None:
    assert percentile([7.0], 10) == percentile([7.0], 90) == 7


@pytest.mark.parametrize("q", [-1, 101])
def test_percentile_out_of_range(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], q)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_is_robust_to_one_outlier() -> None:
    # The point of medians here: one sample taken while another engineer's tests ran must not move it.
    summary = Summary.of([0.030, 0.031, 0.029, 0.032, 0.030, 5.0])
    assert summary.n == 6
    assert summary.median == pytest.approx(0.0305)
    assert summary.p10 <= summary.median <= summary.p90


def test_ratio() -> None:
    assert ratio(0.3, 0.1) == pytest.approx(3.0)
    assert ratio(0.3, 0.0) == math.inf


@pytest.mark.parametrize(("runs", "passes"), [(20, 5), (30, 5), (5, 5), (3, 7), (1, 1)])
def test_profile_passes_are_spread_over_all_rounds(runs: int, passes: int) -> None:
    schedule = profile_schedule(runs, passes)
    assert len(schedule) == runs
    assert sum(schedule) == passes
    assert max(schedule) - min(schedule) <= 1 if passes >= runs else max(schedule) == 1
    assert schedule[0] >= 1  # the first pass right away, the others spread up to the end


# ---- table and goals ----------------------------------------------------------------------------------------


def row(key: str, engine: float, runc: float, pip: float | None = None) -> report.Row:
    pip_summary = Summary(20, pip, pip, pip) if pip is not None else None
    return report.Row(
        key, f"`{key}`", Summary(20, engine, engine * 0.9, engine * 1.2), Summary(20, runc, runc, runc), pip_summary
    )


def test_markdown_table_in_milliseconds() -> None:
    table = report.markdown_table([row("run", 0.045, 0.030)])
    lines = table.splitlines()
    assert lines[0].startswith("| operation | engine median (ms) |")
    assert lines[1] == "|---|--:|--:|--:|--:|--:|"
    assert lines[2] == "| `run` | 45.0 | 40.5-54.0 | 30.0 | 30.0-30.0 | 1.50x |"
    # Every line has the same number of cells, or Markdown renders garbage.
    assert len({line.count("|") for line in lines}) == 1


def test_markdown_table_with_the_pip_engine() -> None:
    table = report.markdown_table([row("run", 0.045, 0.030, pip=0.060), row("state", 0.010, 0.005)])
    lines = table.splitlines()
    assert "pip-installed engine (ms)" in lines[0] and "pip engine/runc" in lines[0]
    assert lines[2] == "| `run` | 45.0 | 40.5-54.0 | 60.0 | 30.0 | 30.0-30.0 | 1.50x | 2.00x |"
    assert lines[3].endswith("| 2.00x | - |")
    assert len({line.count("|") for line in lines}) == 1


def test_hot_commands_against_the_floor() -> None:
    floor = Summary(20, 0.010, 0.009, 0.012)
    table = report.floor_table([row("state", 0.012, 0.005, pip=0.013), row("run", 0.1, 0.03)], floor)
    lines = table.splitlines()
    assert lines[2] == "| `state` | 1.20x | 1.30x | 0.50x | <= 1.3x (moonshot 1.1x) |"
    assert len(lines) == 3  # run is not a hot command
    assert len({line.count("|") for line in lines}) == 1


def test_format_ratio_infinite() -> None:
    assert report.format_ratio(math.inf) == "∞"


def test_goals_against_runc_and_against_the_floor() -> None:
    floor = Summary(20, 0.010, 0.010, 0.010)
    rows = [row("run", 0.060, 0.030), row("create", 0.070, 0.030), row("state", 0.013, 0.005)]
    results = {goal.key: (measured, met) for goal, measured, met in report.goal_results(rows, floor)}
    assert results["run"] == (pytest.approx(2.0), True)  # exactly 2x is within "<= 2x"
    assert results["create"] == (pytest.approx(70 / 30), False)
    assert results["state"] == (pytest.approx(1.3), True)  # against the floor, not runc
    line = report.goals_line(rows, floor)
    assert "run <= 2x runc: **met** (2.00x)" in line
    assert "create <= 2x runc: **not met** (2.33x)" in line
    assert "state <= 1.3x the interpreter: **met** (1.30x)" in line
    assert "kill <= 1.3x the interpreter: not measured" in line


def test_goal_against_the_floor_without_a_floor() -> None:
    line = report.goals_line([row("state", 0.01, 0.01)])
    assert "state <= 1.3x the interpreter: not measured" in line


# ---- importtime ---------------------------------------------------------------------------------------------

IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |   _io
import time:       300 |        400 | io
some other stderr line
import time:        50 |         50 |       typing_extensions
import time:      1000 |       1050 |     pydantic.main
import time:       200 |       1250 |   pydantic
import time:      2000 |       3250 | engine.spec.load
import time:        10 |         10 | json
"""


def test_parse_importtime_finds_parents_from_the_indentation() -> None:
    entries = {e.name: e for e in report.parse_importtime(IMPORTTIME)}
    assert set(entries) == {"_io", "io", "typing_extensions", "pydantic.main", "pydantic", "engine.spec.load", "json"}
    assert entries["_io"].parent == "io"
    assert entries["typing_extensions"].parent == "pydantic.main"
    assert entries["pydantic.main"].parent == "pydantic"
    assert entries["pydantic"].parent == "engine.spec.load"
    assert entries["engine.spec.load"].parent is None
    assert (entries["pydantic"].self_us, entries["pydantic"].cumulative_us) == (200, 1250)


def test_import_totals_sum_self_times_only() -> None:
    entries = report.parse_importtime(IMPORTTIME)
    assert report.total_import_us(entries) == 100 + 300 + 50 + 1000 + 200 + 2000 + 10


def test_top_cumulative_and_by_package() -> None:
    entries = report.parse_importtime(IMPORTTIME)
    assert [e.name for e in report.top_cumulative(entries, 3)] == ["engine.spec.load", "pydantic", "pydantic.main"]
    packages = dict(report.by_package(entries))
    assert packages["pydantic"] == 1200  # pydantic and pydantic.main, each counted once
    assert next(iter(packages)) == "engine"  # largest first


def test_median_entries_over_runs() -> None:
    runs = [
        [report.ImportEntry("a", 10, 30, None)],
        [report.ImportEntry("a", 30, 90, None), report.ImportEntry("b", 5, 5, "a")],
        [report.ImportEntry("a", 20, 60, None)],
    ]
    merged = {e.name: e for e in report.median_entries(runs)}
    assert (merged["a"].self_us, merged["a"].cumulative_us) == (20, 60)
    assert merged["b"].parent == "a"


def test_import_summary_line() -> None:
    entries = report.parse_importtime(IMPORTTIME)
    line = report.import_summary_line("create", entries, runs=5, profiled_wall=0.00734)
    assert line.startswith("- `engine create`: 4 of 7 ms are imports (50%) (medians of 5 runs).")
    assert "`engine.spec.load` 3," in line
    assert "Self time by package: engine 2," in line


def test_floor_line_gives_the_room_above_the_interpreter_start() -> None:
    floor = Summary(20, 0.010, 0.009, 0.012)
    line = report.floor_line(floor, [row("run", 0.3, 0.030), row("state", 0.012, 0.007)])
    assert line.startswith("The interpreter's floor, `python -S -I -c pass` with engine's interpreter, takes 10.0 ms")
    assert "<= 1.3x allows state 13.0 ms." in line


def test_import_detail_lists_parents() -> None:
    detail = report.import_detail("create", report.parse_importtime(IMPORTTIME))
    assert "pydantic.main  (pydantic)" in detail


# ---- README -------------------------------------------------------------------------------------------------

README = """\
# engine

Intro mentioning PERF_TABLE_PLACEHOLDER in passing is not the line.

## Performance

See bench/.

PERF_TABLE_PLACEHOLDER

## Status

Others' text.
"""


def test_first_write_replaces_the_placeholder_line() -> None:
    new = report.replace_block(README, "| table |")
    assert "PERF_TABLE_PLACEHOLDER\n" not in new
    assert f"See bench/.\n\n{report.START_MARKER}\n| table |\n{report.END_MARKER}\n\n## Status\n" in new
    # Everything outside the block is untouched.
    before, after = README.split("PERF_TABLE_PLACEHOLDER\n\n## Status")
    assert new.startswith(before)
    assert new.endswith("\n\n## Status" + after)


def test_second_write_replaces_only_between_the_markers() -> None:
    once = report.replace_block(README, "old table")
    twice = report.replace_block(once, "new table\n")
    assert "old table" not in twice
    assert twice == report.replace_block(README, "new table")
    assert twice.count(report.START_MARKER) == twice.count(report.END_MARKER) == 1


def test_no_placeholder_and_no_markers_is_refused() -> None:
    with pytest.raises(report.ReadmeError):
        report.replace_block("# engine\n\n## Performance\n\nnothing here\n", "x")


@pytest.mark.parametrize(
    "text",
    [
        f"## Performance\n{report.START_MARKER}\n{report.START_MARKER}\n{report.END_MARKER}\n",
        f"## Performance\n{report.END_MARKER}\nx\n{report.START_MARKER}\n",
        f"## Performance\n{report.START_MARKER}\nno end\n",
        "## Performance\nPERF_TABLE_PLACEHOLDER\nPERF_TABLE_PLACEHOLDER\n",
    ],
)
def test_ambiguous_readme_is_refused(text: str) -> None:
    with pytest.raises(report.ReadmeError):
        report.replace_block(text, "x")


def test_block_outside_the_performance_section_is_refused() -> None:
    text = "# engine\n\n## Status\n\nPERF_TABLE_PLACEHOLDER\n\n## Performance\n\ntext\n"
    with pytest.raises(report.ReadmeError, match="Performance"):
        report.replace_block(text, "x")


def test_write_readme_in_place(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README)
    readme.chmod(0o644)
    report.write_readme(readme, "| t |")
    assert f"{report.START_MARKER}\n| t |\n{report.END_MARKER}" in readme.read_text()
    assert readme.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]  # no temporary file left


def test_write_readme_leaves_a_bad_readme_alone(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# engine\n")
    with pytest.raises(report.ReadmeError):
        report.write_readme(readme, "x")
    assert readme.read_text() == "# engine\n"
