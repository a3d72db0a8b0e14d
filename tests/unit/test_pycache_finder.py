"""engine/pycache_finder.py: it loads engine's modules only from a .pyc that CPython's own timestamp check would
accept, leaves everything else to the usual finders, and is what create's imports go through."""

from __future__ import annotations

import os
import py_compile
import subprocess
import sys
from pathlib import Path

from engine.pycache_finder import PycacheFinder, _Loaded

REPO = Path(__file__).resolve().parents[2]
TAG = sys.implementation.cache_tag


def compiled(directory: Path, name: str, text: str, **how: object) -> Path:
    source = directory / f"{name}.py"
    source.write_text(text)
    py_compile.compile(str(source), cfile=str(directory / "__pycache__" / f"{name}.{TAG}.pyc"), doraise=True, **how)
    return source


def load(spec: object) -> dict[str, object]:
    namespace: dict[str, object] = {}
    loader = spec.loader  # type: ignore[attr-defined]
    module = type(sys)(spec.name)  # type: ignore[attr-defined]
    loader.exec_module(module)
    namespace.update(vars(module))
    return namespace


def test_an_up_to_date_pyc_is_loaded(tmp_path: Path) -> None:
    source = compiled(tmp_path, "mod", "X = 1\n")
    spec = PycacheFinder().find_spec("engine.mod", [str(tmp_path)])
    assert spec is not None and isinstance(spec.loader, _Loaded)
    assert spec.origin == str(source) and spec.has_location
    assert spec.cached == str(tmp_path / "__pycache__" / f"mod.{TAG}.pyc")
    assert spec.submodule_search_locations is None
    assert load(spec)["X"] == 1


def test_a_stale_pyc_is_left_to_the_usual_finders(tmp_path: Path) -> None:
    source = compiled(tmp_path, "mod", "X = 1\n")
    stamp = source.stat()
    source.write_text("X = 22\n")  # another size, same mtime: CPython recompiles
    os.utime(source, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert PycacheFinder().find_spec("engine.mod", [str(tmp_path)]) is None
    source.write_text("X = 2\n")  # the same size, another mtime
    os.utime(source, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 2 * 10**9))
    assert PycacheFinder().find_spec("engine.mod", [str(tmp_path)]) is None


def test_a_missing_hash_based_or_damaged_pyc_is_left_to_the_usual_finders(tmp_path: Path) -> None:
    (tmp_path / "plain.py").write_text("X = 1\n")
    assert PycacheFinder().find_spec("engine.plain", [str(tmp_path)]) is None
    compiled(tmp_path, "hashed", "X = 1\n", invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    assert PycacheFinder().find_spec("engine.hashed", [str(tmp_path)]) is None
    compiled(tmp_path, "flagged", "X = 1\n")  # flags set: CPython reads bytes 8-16 as a hash, not mtime and size
    pyc = tmp_path / "__pycache__" / f"flagged.{TAG}.pyc"
    pyc.write_bytes(pyc.read_bytes()[:4] + b"\1\0\0\0" + pyc.read_bytes()[8:])
    assert PycacheFinder().find_spec("engine.flagged", [str(tmp_path)]) is None
    compiled(tmp_path, "cut", "X = 1\n" * 50)
    pyc = tmp_path / "__pycache__" / f"cut.{TAG}.pyc"
    pyc.write_bytes(pyc.read_bytes()[:40])
    assert PycacheFinder().find_spec("engine.cut", [str(tmp_path)]) is None
    compiled(tmp_path, "magic", "X = 1\n")
    pyc = tmp_path / "__pycache__" / f"magic.{TAG}.pyc"
    pyc.write_bytes(b"\0\0\0\0" + pyc.read_bytes()[4:])
    assert PycacheFinder().find_spec("engine.magic", [str(tmp_path)]) is None


def test_a_big_pyc_is_read_whole(tmp_path: Path) -> None:
    compiled(tmp_path, "big", "".join(f"X{i} = {str(i) * 60!r}\n" for i in range(1000)))
    assert (tmp_path / "__pycache__" / f"big.{TAG}.pyc").stat().st_size > 1 << 17
    spec = PycacheFinder().find_spec("engine.big", [str(tmp_path)])
    assert spec is not None and load(spec)["X999"] == "999" * 60


def test_a_package_comes_before_a_module_of_the_same_name(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    compiled(tmp_path / "pkg", "__init__", "WHO = 'package'\n")
    compiled(tmp_path, "pkg", "WHO = 'module'\n")
    spec = PycacheFinder().find_spec("engine.pkg", [str(tmp_path)])
    assert spec is not None and spec.submodule_search_locations == [str(tmp_path / "pkg")]
    assert spec.origin == str(tmp_path / "pkg" / "__init__.py")
    assert load(spec)["WHO"] == "package"


def test_only_the_submodules_of_engines_packages(tmp_path: Path) -> None:
    compiled(tmp_path, "mod", "X = 1\n")
    finder = PycacheFinder()
    assert finder.find_spec("json.mod", [str(tmp_path)]) is None
    assert finder.find_spec("enginex.mod", [str(tmp_path)]) is None
    assert finder.find_spec("engine", None) is None  # top-level: sys.path's finders
    for package in ("engine", "state", "hooks"):
        assert finder.find_spec(f"{package}.mod", [str(tmp_path)]) is not None


def test_create_and_its_child_load_engines_modules_through_it() -> None:
    # As `engine create` starts: the command's module installs the finder before it imports the rest.
    probe = (
        f"import sys; sys.path += [{str(REPO)!r}]\n"
        "import engine.commands.create, engine.init\n"
        "from engine.pycache_finder import _Loaded\n"
        "ours = [n for n in sys.modules if n.split('.')[0] in ('engine', 'state', 'hooks')]\n"
        "print(sorted(n for n in ours if not isinstance(sys.modules[n].__loader__, _Loaded)))\n"
    )
    # compileall first: this checkout's .pyc files may be older than its sources (then the usual finders load them)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "engine"), str(REPO / "state")], check=True)
    out = subprocess.run([sys.executable, "-S", "-I", "-c", probe], capture_output=True, text=True, check=True)
    # Before the finder is installed: the packages on sys.path, and the modules that install it.
    assert out.stdout.split("\n")[0] == repr(
        ["engine", "engine.commands", "engine.commands.create", "engine.pycache_finder", "state"]
    )
