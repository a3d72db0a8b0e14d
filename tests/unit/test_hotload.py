"""engine/hotload.py: the hot commands' modules served from one cached file, only while their sources are unchanged.

Each check runs in a fresh interpreter (-S -I, as the `engine` launcher starts it) on a copy of engine's packages in
tmp_path, whose sources the tests edit: the real tree's files are never touched.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SITE_PACKAGES = [p for p in sys.path if p.endswith("site-packages")]

# Loads the bundle (as the launcher does), imports the given modules, prints {module: loader's class} for every
# engine/state module loaded, and the sorted module names.
PROBE = """
import sys
sys.path += [{tree!r}] + {site!r}
from engine import hotload
finder = hotload.load_bundle({bundle!r})
sys.modules.pop("engine.hotload"); sys.modules.pop("engine", None)  # as the launcher: nothing loaded before it
for name in {imports!r}:
    __import__(name)
loaders = {{n: type(m.__loader__).__name__ for n, m in sys.modules.items() if n.split(".")[0] in ("engine", "state")}}
print(repr((finder is not None, loaders, sorted(sys.modules))))
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of engine's packages, with its bundle built."""
    copy = tmp_path / "tree"
    for package in ("engine", "state"):
        shutil.copytree(REPO / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    build(copy)
    return copy


def build(tree: Path) -> None:
    subprocess.run(
        [sys.executable, "-S", "-I", "-c", f"import sys; sys.path[:0] = [{str(tree)!r}]; from engine import "
         "hotload_codegen; hotload_codegen.main()"],
        check=True, capture_output=True,
    )  # fmt: skip


def bundle_of(tree: Path) -> str:
    return f"{tree}/engine/__pycache__/hot.{sys.implementation.cache_tag}.bundle"


def probe(tree: Path, *imports: str, bundle: str | None = None) -> tuple[bool, dict[str, str], list[str]]:
    code = PROBE.format(tree=str(tree), site=SITE_PACKAGES, bundle=bundle or bundle_of(tree), imports=list(imports))
    result = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, check=True)
    return ast.literal_eval(result.stdout)


def edit(path: Path, line: str) -> None:
    """Change a source the way an editor does (its size and mtime change)."""
    text = path.read_text()
    path.write_text(text + f"\n{line}\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_the_hot_commands_come_from_the_bundle(tree: Path) -> None:
    installed, loaders, modules = probe(tree, "engine.cli", "engine.cli_table", "engine.commands.state")
    assert installed
    ours = {name for name in loaders if name != "engine.hotload"}
    assert {"engine.cli", "state.store", "state.record", "engine.commands.state"} <= ours
    assert {loaders[name] for name in ours} == {"HotFinder"}, loaders
    # The same modules as an ordinary import: the bundle changes how, never what.
    _, _, plain = probe(tree, "engine.cli", "engine.cli_table", "engine.commands.state", bundle=str(tree / "none"))
    assert set(modules) - {"engine.hotload"} == set(plain) - {"engine.hotload"}


def test_an_edited_module_is_imported_from_its_source(tree: Path) -> None:
    edit(tree / "state" / "record.py", "EDITED = True")
    probe_code = "import state.record; assert state.record.EDITED"
    _, loaders, _ = probe(tree, "engine.commands.state")
    assert loaders["state.record"] == "SourceFileLoader"  # its stamp no longer matches
    assert loaders["state.store"] == "HotFinder"  # the others still come from the bundle
    subprocess.run(
        [sys.executable, "-S", "-I", "-c", PROBE.format(tree=str(tree), site=SITE_PACKAGES, bundle=bundle_of(tree),
         imports=["engine.commands.state"]) + probe_code],
        check=True, capture_output=True,
    )  # fmt: skip


def test_nothing_is_served_once_the_loader_itself_changed(tree: Path) -> None:
    edit(tree / "engine" / "hotload.py", "# edited")
    installed, loaders, _ = probe(tree, "engine.commands.state")
    assert not installed
    assert "HotFinder" not in loaders.values()


def test_a_bundle_of_another_interpreter_is_ignored(tree: Path) -> None:
    bundle = Path(bundle_of(tree))
    data = bundle.read_bytes()
    bundle.write_bytes(b"\0\0\r\n" + data[4:])  # another magic number
    installed, loaders, _ = probe(tree, "engine.commands.state")
    assert not installed and "HotFinder" not in loaders.values()


def test_modules_run_ahead_look_imported(tree: Path) -> None:
    # state.store runs ahead of engine.commands.state (one of its deps): its attributes and its parent's are as
    # importlib sets them.
    code = PROBE.format(tree=str(tree), site=SITE_PACKAGES, bundle=bundle_of(tree), imports=["engine.commands.state"])
    code += (
        "import state, state.store as s\n"
        "assert state.store is s and s.__spec__.name == 'state.store' and s.__package__ == 'state'\n"
        f"assert s.__file__ == {str(tree / 'state' / 'store.py')!r} and s.__loader__ is s.__spec__.loader\n"
        "assert state.__path__ == [state.__file__.rpartition('/')[0]]\n"
    )
    subprocess.run([sys.executable, "-S", "-I", "-c", code], check=True, capture_output=True)


def test_a_module_that_asserts_is_refused(tree: Path) -> None:
    # Compiled without docstrings (optimize=2), which also drops asserts: a bundled module must not have any.
    edit(tree / "state" / "rules.py", "assert CREATED")
    with pytest.raises(subprocess.CalledProcessError) as failed:
        build(tree)
    assert b"asserts or reads __doc__" in failed.value.stderr


def test_the_launcher_serves_the_hot_commands_from_the_bundle(tmp_path: Path) -> None:
    # setup.sh's .venv/bin/engine as written, with the repo's bundle (fails while either is stale: run setup.sh or
    # python -m engine.hotload_codegen): every engine module `engine list` imports comes from the bundle, and none
    # through importlib's round (engine/cli.py preloads the command's module, boot() what the launcher imports).
    launcher = Path(sys.executable).with_name("engine").read_text()
    assert launcher.rstrip().endswith("exit_quickly(main())")
    code = launcher.rstrip().removesuffix("exit_quickly(main())") + (
        "asked = []\n"
        "finder = sys.meta_path[0]\n"
        "find_spec = finder.find_spec\n"
        "finder.find_spec = lambda name, *rest: asked.append(name) or find_spec(name, *rest)\n"
        f"assert main(['--root', {str(tmp_path)!r}, 'list']) == 0\n"
        "print(repr((asked, sorted(n for n, m in sys.modules.items() if n.split('.')[0] in ('engine', 'state')\n"
        "    and type(m.__loader__).__name__ != 'HotFinder'))))\n"
    )
    result = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, check=True)
    asked, elsewhere = ast.literal_eval(result.stdout.splitlines()[-1])
    assert elsewhere == [], "not from the bundle: stale? (python -m engine.hotload_codegen)"
    assert [name for name in asked if name.split(".")[0] in ("engine", "state")] == []


def test_preload_runs_a_module_and_its_imports_without_importlib(tree: Path) -> None:
    code = PROBE.format(tree=str(tree), site=SITE_PACKAGES, bundle=bundle_of(tree), imports=["engine.cli"])
    code += (
        "asked = []\n"
        "find_spec = finder.find_spec\n"
        "finder.find_spec = lambda name, *rest: asked.append(name) or find_spec(name, *rest)\n"
        "finder.preload('engine.commands.state')\n"
        "import engine.commands.state, state.store\n"
        "assert engine.commands.state.__loader__ is finder and engine.commands.__path__\n"
        "assert state.store.Store and engine.commands.state.run\n"
        "print([name for name in asked if name.split('.')[0] in ('engine', 'state')])\n"
    )
    result = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, check=True)
    assert ast.literal_eval(result.stdout.splitlines()[-1]) == []


def test_main_preloads_the_command_through_the_finder(tmp_path: Path) -> None:
    from engine import cli

    class Finder:
        asked: list[str] = []

        @classmethod
        def preload(cls, name: str) -> None:
            cls.asked.append(name)

        @staticmethod
        def find_spec(name: str, path: object = None, target: object = None) -> None:
            return None

    sys.meta_path.insert(0, Finder)  # type: ignore[arg-type]
    try:
        assert cli.main(["--root", str(tmp_path), "list", "--quiet"]) == 0
    finally:
        sys.meta_path.remove(Finder)  # type: ignore[arg-type]
    assert Finder.asked == ["engine.commands.list"]
