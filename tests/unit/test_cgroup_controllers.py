"""engine/cgroups/controllers: the table of controllers agrees with the modules it names, without importing them."""

from __future__ import annotations

from pathlib import Path

from engine.cgroups import controllers


def test_each_entry_names_its_modules_key() -> None:
    for key, name in controllers.ORDER:
        assert key == controllers.load(name).KEY, name


def test_every_controller_module_is_in_the_table_once() -> None:
    here = Path(controllers.__file__).parent
    modules = sorted(p.stem for p in here.glob("*.py") if p.stem != "__init__")
    assert sorted(name for _, name in controllers.ORDER) == modules
    assert [m.__name__.rsplit(".", 1)[1] for m in controllers.table()] == [name for _, name in controllers.ORDER]
