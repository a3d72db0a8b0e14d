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

from engine import hotload

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
    for package in ("engine", "state", "hooks"):
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


# ---- the cold bundle: create's and run's modules, read only by them ---------------------------------------------


def test_create_comes_from_the_cold_bundle_which_hot_commands_never_read(tree: Path) -> None:
    code = PROBE.format(tree=str(tree), site=SITE_PACKAGES, bundle=bundle_of(tree), imports=["engine.commands.state"])
    code += (
        "assert finder.cold is None and finder.cold_path, 'a hot command read the cold bundle'\n"
        "import engine.commands.create, engine.init\n"
        "cold = finder.cold\n"
        "assert engine.commands.create.__loader__ is cold and engine.init.__loader__ is cold\n"
        "print(sorted(n for n, m in sys.modules.items() if n.split('.')[0] in ('engine', 'state', 'hooks')\n"
        "    and n not in getattr(m.__loader__, 'entries', {})))\n"
    )
    result = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, check=True)
    # Every engine module create's parent and the init import at module level is in one bundle or the other.
    assert ast.literal_eval(result.stdout.splitlines()[-1]) == []


def test_an_edited_module_of_the_cold_bundle_is_imported_from_its_source(tree: Path) -> None:
    edit(tree / "engine" / "init.py", "EDITED = True")
    code = PROBE.format(tree=str(tree), site=SITE_PACKAGES, bundle=bundle_of(tree), imports=["engine.init"])
    code += "import engine.init; assert engine.init.EDITED and engine.init.__loader__ is not finder.cold\n"
    code += "import engine.create; assert engine.create.__loader__ is finder.cold\n"
    subprocess.run([sys.executable, "-S", "-I", "-c", code], check=True, capture_output=True)


def test_a_missing_cold_bundle_leaves_create_to_the_pyc_files(tree: Path) -> None:
    Path(bundle_of(tree).replace("/hot.", "/cold.")).unlink()
    code = PROBE.format(tree=str(tree), site=SITE_PACKAGES, bundle=bundle_of(tree), imports=["engine.commands.create"])
    code += "import engine.commands.create; assert finder.cold is None and engine.commands.create.run\n"
    subprocess.run([sys.executable, "-S", "-I", "-c", code], check=True, capture_output=True)


# ---- without a bundle (a pip install): the .pyc files CPython wrote, checked as CPython checks them -------------

TAG = sys.implementation.cache_tag


def compiled(directory: Path, name: str, text: str, **how: object) -> Path:
    import py_compile

    source = directory / f"{name}.py"
    source.write_text(text)
    py_compile.compile(str(source), cfile=str(directory / "__pycache__" / f"{name}.{TAG}.pyc"), doraise=True, **how)
    return source


def pyc_finder() -> hotload.HotFinder:
    return hotload.HotFinder(b"", {})


def load(spec: object) -> dict[str, object]:
    module = type(sys)(spec.name)  # type: ignore[attr-defined]
    module.__spec__ = spec  # type: ignore[assignment]
    spec.loader.exec_module(module)  # type: ignore[attr-defined]
    return dict(vars(module))


def test_an_up_to_date_pyc_is_loaded(tmp_path: Path) -> None:
    source = compiled(tmp_path, "mod", "X = 1\n")
    finder = pyc_finder()
    spec = finder.find_spec("engine.mod", [str(tmp_path)])
    assert spec is not None and spec.loader is finder
    assert spec.origin == str(source) and spec.has_location
    assert spec.cached == str(tmp_path / "__pycache__" / f"mod.{TAG}.pyc")
    assert spec.submodule_search_locations is None
    assert load(spec)["X"] == 1


def test_a_stale_pyc_is_left_to_the_usual_finders(tmp_path: Path) -> None:
    source = compiled(tmp_path, "mod", "X = 1\n")
    stamp = source.stat()
    source.write_text("X = 22\n")  # another size, same mtime: CPython recompiles
    os.utime(source, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert pyc_finder().find_spec("engine.mod", [str(tmp_path)]) is None
    source.write_text("X = 2\n")  # the same size, another mtime
    os.utime(source, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 2 * 10**9))
    assert pyc_finder().find_spec("engine.mod", [str(tmp_path)]) is None


def test_a_missing_hash_based_or_damaged_pyc_is_left_to_the_usual_finders(tmp_path: Path) -> None:
    import py_compile

    (tmp_path / "plain.py").write_text("X = 1\n")
    assert pyc_finder().find_spec("engine.plain", [str(tmp_path)]) is None
    compiled(tmp_path, "hashed", "X = 1\n", invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    assert pyc_finder().find_spec("engine.hashed", [str(tmp_path)]) is None
    compiled(tmp_path, "flagged", "X = 1\n")  # flags set: CPython reads bytes 8-16 as a hash, not mtime and size
    pyc = tmp_path / "__pycache__" / f"flagged.{TAG}.pyc"
    pyc.write_bytes(pyc.read_bytes()[:4] + b"\1\0\0\0" + pyc.read_bytes()[8:])
    assert pyc_finder().find_spec("engine.flagged", [str(tmp_path)]) is None
    compiled(tmp_path, "cut", "X = 1\n" * 50)
    pyc = tmp_path / "__pycache__" / f"cut.{TAG}.pyc"
    pyc.write_bytes(pyc.read_bytes()[:40])
    assert pyc_finder().find_spec("engine.cut", [str(tmp_path)]) is None
    compiled(tmp_path, "magic", "X = 1\n")
    pyc = tmp_path / "__pycache__" / f"magic.{TAG}.pyc"
    pyc.write_bytes(b"\0\0\0\0" + pyc.read_bytes()[4:])
    assert pyc_finder().find_spec("engine.magic", [str(tmp_path)]) is None


def test_a_big_pyc_is_read_whole(tmp_path: Path) -> None:
    compiled(tmp_path, "big", "".join(f"X{i} = {str(i) * 60!r}\n" for i in range(1000)))
    assert (tmp_path / "__pycache__" / f"big.{TAG}.pyc").stat().st_size > 1 << 17
    spec = pyc_finder().find_spec("engine.big", [str(tmp_path)])
    assert spec is not None and load(spec)["X999"] == "999" * 60


def test_a_package_comes_before_a_module_of_the_same_name(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    compiled(tmp_path / "pkg", "__init__", "WHO = 'package'\n")
    compiled(tmp_path, "pkg", "WHO = 'module'\n")
    spec = pyc_finder().find_spec("engine.pkg", [str(tmp_path)])
    assert spec is not None and spec.submodule_search_locations == [str(tmp_path / "pkg")]
    assert spec.origin == str(tmp_path / "pkg" / "__init__.py")
    assert load(spec)["WHO"] == "package"


def test_only_the_submodules_of_engines_packages(tmp_path: Path) -> None:
    compiled(tmp_path, "mod", "X = 1\n")
    finder = pyc_finder()
    assert finder.find_spec("json.mod", [str(tmp_path)]) is None
    assert finder.find_spec("enginex.mod", [str(tmp_path)]) is None
    assert finder.find_spec("engine", None) is None  # top-level: sys.path's finders
    for package in ("engine", "state", "hooks"):
        assert finder.find_spec(f"{package}.mod", [str(tmp_path)]) is not None


def test_a_module_reloaded_after_its_pyc_was_used_runs_its_source(tmp_path: Path) -> None:
    source = compiled(tmp_path, "mod", "X = 1\n")
    finder = pyc_finder()
    spec = finder.find_spec("engine.mod", [str(tmp_path)])
    module = type(sys)("engine.mod")
    module.__spec__ = spec
    finder.exec_module(module)
    source.write_text("X = 22\n")
    finder.exec_module(module)  # as importlib.reload does, with the spec it has
    assert module.X == 22


@pytest.mark.parametrize("command, child", [("create", "engine.init"), ("exec", "engine.exec")])
def test_create_exec_and_their_children_load_engines_modules_through_it(command: str, child: str) -> None:
    # Without the launcher (`python -m engine`, a test, a pip install without a bundle): the command's module
    # installs the finder before it imports the rest, which then come from their .pyc.
    probe = (
        f"import sys; sys.path += [{str(REPO)!r}]\n"
        f"import engine.commands.{command}, {child}\n"
        "ours = [n for n in sys.modules if n.split('.')[0] in ('engine', 'state', 'hooks')]\n"
        "print(sorted(n for n in ours if type(sys.modules[n].__loader__).__name__ != 'HotFinder'))\n"
    )
    # compileall first: this checkout's .pyc files may be older than its sources (then the usual finders load them)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "engine"), str(REPO / "state")], check=True)
    out = subprocess.run([sys.executable, "-S", "-I", "-c", probe], capture_output=True, text=True, check=True)
    # Before the finder is installed: the packages on sys.path, and the modules that install it.
    assert out.stdout.split("\n")[0] == repr(
        ["engine", "engine.commands", f"engine.commands.{command}", "engine.hotload", "state"]
    )
