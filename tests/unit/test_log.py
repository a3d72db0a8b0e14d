"""engine.log: runc's (logrus's) line shapes, the file created up front, debug lines only with --debug."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine.log import Log, format_line, text_value

TEXT_LINE = re.compile(r'^time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" level=(debug|info|warning|error) msg=(\S*|".*")$')


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("created", "created"),  # a plain word stays bare, as logrus writes it
        ("a/b-c.d_e@f^g+h", "a/b-c.d_e@f^g+h"),
        ("two words", '"two words"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("tab\there", '"tab\\there"'),
        ("bell\x07", '"bell\\x07"'),
        ("", ""),
    ],
)
def test_text_values_are_quoted_as_logrus_quotes_them(value: str, written: str) -> None:
    assert text_value(value) == written


def test_line_shapes() -> None:
    assert TEXT_LINE.match(format_line("debug", "made the cgroups", "text").rstrip("\n"))
    entry = format_line("debug", "made the cgroups", "json")
    assert entry.endswith("\n") and "\n" not in entry[:-1]
    parsed = json.loads(entry)
    assert list(parsed) == ["level", "msg", "time"]  # logrus sorts the keys
    assert parsed["level"] == "debug" and parsed["msg"] == "made the cgroups"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", parsed["time"])


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_file_is_created_before_anything_is_logged(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "log"
    log = Log(str(path), fmt, debug=False)
    assert path.exists() and path.read_text() == ""
    log.debug("not without --debug")
    log.info("info is for the file")
    assert len(path.read_text().splitlines()) == 1


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_lines_go_to_the_file(tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "log"
    log = Log(str(path), fmt, debug=True)
    log.debug("step one")
    log.error('it "failed"\nbadly')
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    if fmt == "json":
        assert [json.loads(line)["level"] for line in lines] == ["debug", "error"]
        assert json.loads(lines[1])["msg"] == 'it "failed" badly'
    else:
        assert all(TEXT_LINE.match(line) for line in lines), lines
        assert lines[1].endswith('msg="it \\"failed\\" badly"')
    assert capsys.readouterr().err == 'engine: it "failed" badly\n'  # the error, not the debug line


def test_debug_lines_go_to_stderr_without_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    Log(None, "text", debug=True).debug("step one")
    Log(None, "text", debug=False).debug("not this one")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and TEXT_LINE.match(err[0]) and err[0].endswith('msg="step one"')


def test_an_unwritable_log_is_not_an_error(tmp_path: Path) -> None:
    log = Log(str(tmp_path / "missing-dir" / "log"), "json", debug=True)
    log.debug("lost, quietly")
