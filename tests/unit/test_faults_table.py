"""The planted-fault table (tests/faults/table.py) still fits the code: every replacement applies to the current
tree (its text occurs exactly once), leaves Python that compiles, and names tests that exist. A refactor that
rewords a planted line fails here, fast, instead of the fault silently proving nothing. Running the faults
themselves is `python -m tests.faults` (tests/faults/README.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.faults.run import planted
from tests.faults.table import FAULTS, Fault

REPO = Path(__file__).resolve().parents[2]


def test_names_are_unique_and_every_point_of_issue_12_is_proved() -> None:
    names = [f.name for f in FAULTS]
    assert len(names) == len(set(names))
    assert {f"12.{n}" for n in range(1, 7)} <= {f.point for f in FAULTS}


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_the_fault_still_applies(fault: Fault) -> None:
    path = REPO / fault.file
    original = path.read_text()
    changed = planted(original, fault)  # ValueError unless every edit's text occurs exactly once
    assert changed != original
    if fault.file.endswith(".py"):
        ast.parse(changed, fault.file)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_its_tests_exist(fault: Fault) -> None:
    assert fault.tests
    for node in fault.tests:
        file, _, rest = node.partition("::")
        assert (REPO / file).is_file(), node
        function = re.split(r"[\[:]", rest)[0]
        assert re.search(rf"^(async )?def {function}\(", (REPO / file).read_text(), re.MULTILINE), node
