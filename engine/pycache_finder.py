"""A shorter way to engine's own modules for the commands that import dozens of them (create, run).

Python's path finder and source loader spend ~40-50 us of Python code on every module before its code runs:
the directory's listing and mtime, the spec, cache_from_source twice, a stat of the source, a buffered read of
the .pyc, its header classified and validated step by step. `engine create` imports ~50 of engine's modules
and its forked child ~20 more, so that is ~3 ms of every create's CPU. This finder, first on sys.meta_path,
answers for the submodules of engine's packages only: it stats the source (a subpackage's __init__.py first, as
the path finder looks for a package before a module), reads the .pyc that CPython itself wrote beside it
(__pycache__/<name>.<tag>.pyc) with three system calls, and checks it exactly as CPython's timestamp check does
(magic number, flags 0, the source's mtime and size). Anything else (no .pyc, a stale or hash-based one, a
top-level module) is left to the usual finders, which compile and write the .pyc as always, so an edited source
is never run stale.
"""

from __future__ import annotations

import marshal
import posix  # not os: create imports it anyway, but this module must not depend on it
import sys
from _frozen_importlib import ModuleSpec
from _frozen_importlib_external import MAGIC_NUMBER, SourceFileLoader

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import CodeType, ModuleType

# The packages whose submodules this finder loads (the dot: "engine." matches engine.x, not enginex).
PACKAGES = ("engine.", "state.", "hooks.")
_TAG = sys.implementation.cache_tag
_NO_FLAGS = b"\0\0\0\0"  # a timestamp-based .pyc (PEP 552): the only kind this finder checks itself
_READ = 1 << 16  # most of engine's .pyc files are smaller: one read


class _Loaded(SourceFileLoader):
    """The source loader, with the code already read and checked by the finder (the loader of record:
    inspect, linecache and tracebacks find the source through it as usual)."""

    def __init__(self, fullname: str, path: str, code: CodeType) -> None:
        super().__init__(fullname, path)
        self._code: CodeType | None = code

    def exec_module(self, module: ModuleType) -> None:
        code, self._code = self._code, None
        if code is None:  # executed a second time (importlib.reload): the usual way
            super().exec_module(module)
            return
        exec(code, module.__dict__)


class PycacheFinder:
    """Finds engine's submodules through their up-to-date .pyc files; see the module's docstring."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: object = None) -> ModuleSpec | None:
        if path is None or not fullname.startswith(PACKAGES) or len(path) != 1:
            return None
        leaf = fullname.rpartition(".")[2]
        package = f"{path[0]}/{leaf}"
        found = _checked_code(f"{package}/__init__.py", f"{package}/__pycache__/__init__.{_TAG}.pyc")
        if found is not None:
            search = [package]
        else:
            search = None
            found = _checked_code(f"{path[0]}/{leaf}.py", f"{path[0]}/__pycache__/{leaf}.{_TAG}.pyc")
            if found is None:
                return None
        source, cached, code = found
        spec = ModuleSpec(fullname, _Loaded(fullname, source, code), origin=source, is_package=search is not None)
        if search is not None:
            spec.submodule_search_locations = search
        spec.has_location = True
        spec.cached = cached
        return spec


def _checked_code(source: str, cached: str) -> tuple[str, str, CodeType] | None:
    """(source, cached, the code in `cached`) if it is the compiled form of `source` as it is now (CPython's
    timestamp check); None otherwise."""
    try:
        st = posix.stat(source)
        fd = posix.open(cached, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = posix.read(fd, _READ)
        if len(data) == _READ:
            chunks = [data]
            while chunk := posix.read(fd, _READ):
                chunks.append(chunk)
            data = b"".join(chunks)
    except OSError:
        return None
    finally:
        posix.close(fd)
    if (
        len(data) < 16
        or data[:4] != MAGIC_NUMBER
        or data[4:8] != _NO_FLAGS
        or int.from_bytes(data[8:12], "little") != int(st.st_mtime) & 0xFFFFFFFF
        or int.from_bytes(data[12:16], "little") != st.st_size & 0xFFFFFFFF
    ):
        return None
    try:
        return source, cached, marshal.loads(memoryview(data)[16:])
    except (EOFError, ValueError, TypeError):
        return None


def install() -> None:
    """Put the finder first on sys.meta_path (once)."""
    if not any(isinstance(finder, PycacheFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, PycacheFinder())
