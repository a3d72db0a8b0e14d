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
    Header = tuple[Any, str, int, int, dict[str, Entry]]

ModuleSpec = type(sys.__spec__)  # importlib.machinery.ModuleSpec, without importing importlib
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
PACKAGES = ("engine", "state")  # what the bundle may hold: engine's own code, never a dependency's


def bundle_path(package_dir: str) -> str:
    """Where build() writes the bundle for this interpreter: beside the package's .pyc files."""
    return f"{package_dir}/__pycache__/hot.{sys.implementation.cache_tag}.bundle"


def magic() -> bytes:
    from _frozen_importlib_external import MAGIC_NUMBER  # loaded at start-up: the .pyc header's magic

    return MAGIC_NUMBER


class HotFinder:
    """A meta path finder (and loader) for the bundle's modules whose sources are unchanged since it was built."""

    def __init__(self, data: bytes, entries: "dict[str, Entry]") -> None:
        self.code = memoryview(data)
        self.entries = entries

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
        spec = ModuleSpec(name, self, origin=entry[0], is_package=entry[1])
        if entry[1]:
            spec.submodule_search_locations = [entry[0].rpartition("/")[0]]
        spec.has_location = True
        return spec

    def _code(self, entry: "Entry") -> "Any":
        return marshal.loads(self.code[entry[4] : entry[4] + entry[5]])

    def find_spec(self, name: str, path: object = None, target: object = None) -> "Any":
        entry = self._fresh(name)
        if entry is None:
            return None
        for dep in entry[6]:
            if dep not in sys.modules:
                self._run(dep)
        return self._spec(name, entry)

    def preload(self, name: str) -> None:
        """Import `name`, its parent packages and its deps from the bundle ahead of the import statement that asks for
        it, without importlib's round for any of them (~30-40 us each, cold: its module lock, the finders, the
        module's attributes set one by one, all interpreted). A module the bundle does not serve (or no longer:
        edited) is left to that statement."""
        if name in sys.modules or name not in self.entries:
            return
        parent = name.rpartition(".")[0]
        if parent:
            self.preload(parent)
        for dep in self.entries[name][6]:
            if dep not in sys.modules:
                self._run(dep)
        self._run(name)

    def create_module(self, spec: object) -> None:
        return None  # the default module object

    def exec_module(self, module: "ModuleType") -> None:
        exec(self._code(self.entries[module.__name__]), module.__dict__)

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


def boot(data: bytes, header: "Header", preload: "tuple[str, ...]" = ()) -> "HotFinder | None":
    """Serve the bundle's modules (first on sys.meta_path), unless this module's own source changed since the build:
    the copy of it the bundle carries, which the launcher runs, would be stale. Then import `preload` from it."""
    _, origin, mtime_ns, size, entries = header
    try:
        st = posix.stat(origin)
    except OSError:
        return None
    if st.st_mtime_ns != mtime_ns or st.st_size != size:
        return None
    finder = HotFinder(data, entries)
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


def load_bundle(path: str) -> "HotFinder | None":
    """What the `engine` launcher does, for tests and tools: install the bundle at `path` if there is one."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    header = read_header(data)
    return None if header is None else boot(data, header)


if "BUNDLE" in globals():  # run by the launcher, from the bundle: (its bytes, its header)
    boot(*globals()["BUNDLE"], preload=LAUNCHED)
