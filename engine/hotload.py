"""The hot commands' modules in one cached file: one read at start-up instead of a search and a .pyc per module.

`engine state` imports 14 of engine's modules, `start` and `delete` ~18. Each costs the path finder (a stat of
each sys.path directory, the directory's listing, three probes for an extension module, two stats of the .py, the
.pyc opened, read and checked: ~25 syscalls) and the import system's bookkeeping (importlib's Python code), ~20-30
us a module, of the ~1-1.5 ms a hot command costs above the interpreter's start (issue 11).

The bundle is a cached form of the sources, as a .pyc is: build() compiles each module of the hot commands' import
closure and keeps its source's mtime and size beside its code, in <package>/__pycache__/hot.<cache tag>.bundle
(engine/hotload_codegen.py; setup.sh runs it). The `engine` launcher reads it and runs the copy of this module it
carries (boot), which puts a HotFinder first on sys.meta_path: it serves a module from the bundle only while its
source is unchanged (one stat, the check a .pyc gets); an edited module, or one the bundle lacks, is imported from
its source as always, and if this module's own source changed, nothing is served. A bundle another interpreter
wrote (its magic number) is ignored.

A module's own module-level imports of other bundled modules (its deps, read from its syntax tree at build) are run
first, directly, without importlib's round per module: `import engine.commands.state` runs state.store and what it
imports that way, then the command module through importlib. The hot modules only define things at import, so the
order they run in is theirs to choose. The code is compiled without docstrings (build refuses a module that
asserts or reads __doc__, whose behaviour that would change), and each module's code is unmarshalled only when it
is imported: the file is read once, and its bytes are not copied.

Layout: the magic number (4 bytes), the header's length (4 bytes, little-endian), the header (marshal: this
module's code, its source's path, mtime_ns and size, and name -> Entry), then each module's marshalled code.

When there is no bundle (a pip install builds none), or for a module it lacks, the finder reads the .pyc CPython
wrote beside the source (__pycache__/<name>.<tag>.pyc) itself, for the submodules of PACKAGES only: a stat of the
source (a subpackage's __init__.py first, as the path finder looks for a package before a module), then the .pyc
opened and read in three system calls and checked exactly as CPython's timestamp check does (magic number, flags 0,
the source's mtime and size), ~20 us less per module than the path finder and source loader. Anything else (no
.pyc, a stale or hash-based one, a top-level module) is left to the usual finders, which compile and write the .pyc
as always, so an edited source is never run stale.

create's and run's closure (create's parent, what its forked child and the init import) is a second bundle
(cold.<tag>.bundle, same layout) that the hot commands never read: the hot bundle's header lists its names, and the
finder reads it on the first import of one of them.
"""

import marshal
import posix
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    # name -> (source path, is_package, source mtime_ns, source size, code offset, code length, deps to run first)
    Entry = tuple[str, bool, int, int, int, int, tuple[str, ...]]
    # (this module's code, its path, mtime_ns, size, entries, (the cold bundle's path, the names it holds))
    Header = tuple[Any, str, int, int, dict[str, Entry], tuple[str, frozenset[str]]]

ModuleSpec = type(sys.__spec__)  # importlib.machinery.ModuleSpec, without importing importlib
_external = sys.modules["_frozen_importlib_external"]  # loaded at start-up: the .pyc header's magic, the source loader
# The modules the hot commands run (engine/cli.py's parse and dispatch, then each command's run()), and those they
# import inside functions on their usual path (start's lifecycle, delete's removal of empty cgroups). build() adds
# what these import at module level.
ROOTS = (
    "engine.cli",
    "engine.cli_table",
    "engine.commands.state",
    "engine.commands.kill",
    "engine.commands.list",
    "engine.start",
    "engine.delete",
    "state.lifecycle",
    "engine.cgroups.remove",
)
# What the launcher imports next (engine.cli's parse_fast imports the table), run by boot() ahead of it.
LAUNCHED = ("engine.cli", "engine.cli_table")
PACKAGES = ("engine", "state", "hooks")  # what the bundle may hold: engine's own code, never a dependency's
# The modules create and run import (their parent, their forked child, the init) beyond the hot ones, and those
# they import inside functions on their usual path: the cold bundle.
COLD_ROOTS = (
    "engine.commands.create",
    "engine.commands.run",
    "engine.commands.exec",
    "engine.exec",
    "engine.cgroups.exec_join",
    "engine.init",
    "engine.spec.document",
    "engine.cgroups.manager",
    "engine.cgroups.attach_warmup",
    "engine.cgroups.freezer",
    "engine.cgroups.v1",
    "engine.cgroups.layout",
    "engine.cgroups.controllers.cpuset",
    "engine.cgroups.controllers.devices",
    "engine.cgroups.devices",
    "engine.rootless.cgroups",
    "engine.rootless.idmap",
    "engine.undo",
    "engine.linux.seccomp",
    "engine.pty",
    "hooks.runner",
    "state.monitor",
)
# Whose submodules the finder loads from their .pyc when no bundle holds them (the dot: "engine." matches
# engine.x, not enginex).
PYC_PACKAGES = ("engine.", "state.", "hooks.")
_TAG = sys.implementation.cache_tag
_NO_FLAGS = b"\0\0\0\0"  # a timestamp-based .pyc (PEP 552): the only kind the finder checks itself
_READ = 1 << 16  # most of engine's .pyc files are smaller: one read


def bundle_path(package_dir: str, kind: str = "hot") -> str:
    """Where build() writes the bundle (hot or cold) for this interpreter: beside the package's .pyc files."""
    return f"{package_dir}/__pycache__/{kind}.{_TAG}.bundle"


def magic() -> bytes:
    magic_number: bytes = _external.MAGIC_NUMBER
    return magic_number


class HotFinder:
    """The meta path finder (and loader) of engine's own modules: from the bundle while a module's source is unchanged
    since it was built, else from the .pyc CPython wrote while it is up to date, else left to the usual finders."""

    def __init__(
        self, data: bytes, entries: "dict[str, Entry]", cold: "tuple[str, frozenset[str]]" = ("", frozenset())
    ):
        self.code = memoryview(data)
        self.entries = entries
        self.cold_path, self.cold_names = cold
        self.cold: HotFinder | None = None  # the cold bundle's finder, once read
        self.pyc: dict[str, Any] = {}  # name -> code read from its .pyc by find_spec, for exec_module

    def _fresh(self, name: str) -> "Entry | None":
        entry = self.entries.get(name)
        if entry is None:
            return None
        try:
            st = posix.stat(entry[0])
        except OSError:
            st = None
        if st is None or st.st_mtime_ns != entry[2] or st.st_size != entry[3]:
            del self.entries[name]  # edited (or gone) since the build: its source decides from now on
            return None
        return entry

    def _spec(self, name: str, entry: "Entry") -> "Any":
        return self._new_spec(name, entry[0], [entry[0].rpartition("/")[0]] if entry[1] else None)

    def _new_spec(self, name: str, origin: str, search: "list[str] | None", cached: "str | None" = None) -> "Any":
        """The spec of a module this finder loads from `origin` (a package's: `search`, its submodules' place)."""
        spec = ModuleSpec(name, self, origin=origin, is_package=search is not None)
        if search is not None:
            spec.submodule_search_locations = search
        spec.has_location = True
        if cached is not None:
            spec.cached = cached
        return spec

    def _code(self, entry: "Entry") -> "Any":
        return marshal.loads(self.code[entry[4] : entry[4] + entry[5]])

    def find_spec(self, name: str, path: "Any" = None, target: object = None) -> "Any":
        entry = self._fresh(name)
        if entry is None:
            if name in self.cold_names:
                cold = self._cold()
                if cold is not None:
                    return cold.find_spec(name, path)  # its own .pyc fallback if the module is stale
            return self._pyc_spec(name, path)
        for dep in entry[6]:
            if dep not in sys.modules:
                self._run(dep)
        return self._spec(name, entry)

    def preload(self, name: str) -> None:
        """Import `name`, its parent packages and its deps from the bundle ahead of the import statement that asks for
        it, without importlib's round for any of them (~30-40 us each, cold: its module lock, the finders, the
        module's attributes set one by one, all interpreted). A module the bundle does not serve (or no longer:
        edited) is left to that statement."""
        if name in sys.modules:
            return
        if name not in self.entries:
            cold = self._cold() if name in self.cold_names else None
            if cold is not None:
                parent = name.rpartition(".")[0]
                if parent:
                    self.preload(parent)
                cold.preload(name)
            return
        parent = name.rpartition(".")[0]
        if parent:
            self.preload(parent)
        for dep in self.entries[name][6]:
            if dep not in sys.modules:
                self._run(dep)
        self._run(name)

    def _cold(self) -> "HotFinder | None":
        """The cold bundle's finder (read once, on the first import of a name it holds), or None if it is missing
        or another interpreter wrote it; then its modules come from their .pyc."""
        if self.cold is None and self.cold_path:
            cold_path, self.cold_path = self.cold_path, ""  # read at most once
            found = read_bundle(cold_path)
            if found is not None:
                self.cold = HotFinder(found[0], found[1][4])
        return self.cold

    def _pyc_spec(self, name: str, path: "Any") -> "Any":
        """The spec of a submodule of PYC_PACKAGES whose .pyc is up to date (a package before a module), else None."""
        if path is None or not name.startswith(PYC_PACKAGES) or len(path) != 1:
            return None
        leaf = name.rpartition(".")[2]
        package = f"{path[0]}/{leaf}"
        found = _checked_code(f"{package}/__init__.py", f"{package}/__pycache__/__init__.{_TAG}.pyc")
        search = [package] if found is not None else None
        if found is None:
            found = _checked_code(f"{path[0]}/{leaf}.py", f"{path[0]}/__pycache__/{leaf}.{_TAG}.pyc")
            if found is None:
                return None
        source, cached, code = found
        self.pyc[name] = code
        return self._new_spec(name, source, search, cached)

    def create_module(self, spec: object) -> None:
        return None  # the default module object

    def exec_module(self, module: "ModuleType") -> None:
        name = module.__name__
        code = self.pyc.pop(name, None)
        if code is None:
            entry = self.entries.get(name)
            if entry is None:  # executed a second time (importlib.reload) after its .pyc was used: the usual way
                _external.SourceFileLoader(name, module.__spec__.origin).exec_module(module)
                return
            code = self._code(entry)
        exec(code, module.__dict__)

    def _run(self, name: str) -> None:
        """Import `name` as importlib would (in sys.modules, its attributes, its parent's attribute), without
        importlib's round: its parent and its own deps come before it in the order build() gave."""
        entry = self._fresh(name)
        parent, _, child = name.rpartition(".")
        if entry is None or (parent and parent not in sys.modules):
            return  # left to the import system, when the module that needs it runs
        module = type(sys)(name)
        module.__spec__ = spec = self._spec(name, entry)
        module.__loader__ = self
        module.__file__ = entry[0]
        module.__package__ = name if entry[1] else parent
        if entry[1]:
            module.__path__ = spec.submodule_search_locations
        sys.modules[name] = module
        try:
            exec(self._code(entry), module.__dict__)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        if parent:
            setattr(sys.modules[parent], child, module)


def _checked_code(source: str, cached: str) -> "tuple[str, str, Any] | None":
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
        or data[:4] != _external.MAGIC_NUMBER
        or data[4:8] != _NO_FLAGS
        or int.from_bytes(data[8:12], "little") != int(st.st_mtime) & 0xFFFFFFFF
        or int.from_bytes(data[12:16], "little") != st.st_size & 0xFFFFFFFF
    ):
        return None
    try:
        return source, cached, marshal.loads(memoryview(data)[16:])
    except (EOFError, ValueError, TypeError):
        return None


def install() -> "HotFinder":
    """The finder first on sys.meta_path: the launcher's (with its bundle), or one serving .pyc files only, put there
    now (for entry points other than the launcher: `python -m engine`, tests, a launcher whose bundle is stale)."""
    for finder in sys.meta_path:
        if type(finder).__name__ == "HotFinder":  # the launcher's runs a copy of this class: not `isinstance`
            return finder  # type: ignore[return-value]
    finder = HotFinder(b"", {})
    sys.meta_path.insert(0, finder)
    return finder


def boot(data: bytes, header: "Header", preload: "tuple[str, ...]" = ()) -> "HotFinder | None":
    """Serve the bundle's modules (first on sys.meta_path), unless this module's own source changed since the build:
    the copy of it the bundle carries, which the launcher runs, would be stale. Then import `preload` from it."""
    _, origin, mtime_ns, size, entries, cold = header
    try:
        st = posix.stat(origin)
    except OSError:
        return None
    if st.st_mtime_ns != mtime_ns or st.st_size != size:
        return None
    finder = HotFinder(data, entries, cold)
    sys.meta_path.insert(0, finder)
    for name in preload:
        finder.preload(name)
    return finder


def read_header(data: bytes) -> "Header | None":
    """The header of a bundle's bytes, or None if this interpreter did not write it."""
    if data[:4] != magic():
        return None
    header: Header = marshal.loads(memoryview(data)[8:])
    return header


def read_bundle(path: str) -> "tuple[bytes, Header] | None":
    """A bundle's bytes and header, or None if there is none at `path` or this interpreter did not write it."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    header = read_header(data)
    return None if header is None else (data, header)


def load_bundle(path: str) -> "HotFinder | None":
    """What the `engine` launcher does, for tests and tools: install the bundle at `path` if there is one."""
    found = read_bundle(path)
    return None if found is None else boot(*found)


if "BUNDLE" in globals():  # run by the launcher, from the bundle: (its bytes, its header)
    boot(*globals()["BUNDLE"], preload=LAUNCHED)
