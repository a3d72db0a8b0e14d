"""Writes engine/hotload.py's bundle: `python -m engine.hotload_codegen` (setup.sh runs it after compileall).

The bundle is the hot commands' modules compiled from their sources (their import closure from hotload.ROOTS), with
each source's mtime and size, which the launcher checks before serving a module from it; engine/hotload.py says
why and how it is read.
"""

import marshal
import posix
import sys

from engine import hotload
from engine.hotload import COLD_ROOTS, PACKAGES, ROOTS, bundle_path, magic, read_header

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from engine.hotload import Entry


def _module_imports(name: str, origin: str, is_package: bool, wanted: "Callable[[str], bool]") -> list[str]:
    """The modules `wanted` keeps that `name` imports unconditionally at module level, in source order (an import
    under `if TYPE_CHECKING:`, in a function or in a try is not followed: it may not run)."""
    import ast

    with open(origin, "rb") as f:
        tree = ast.parse(f.read(), origin)
    package = name if is_package else name.rpartition(".")[0]
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                prefix = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{prefix}.{base}" if base else prefix
            # `from state import jsonio` imports the submodule state.jsonio; `from x import name` only x.
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            for k in range(1, len(parts) + 1):  # `import a.b.c` imports a, a.b and a.b.c
                prefix = ".".join(parts[:k])
                if prefix not in found and wanted(prefix):
                    found.append(prefix)
    return found


def _is_own_module(name: str) -> bool:
    """Whether `name` is a module (or package) of PACKAGES, with a source file."""
    import importlib.util

    if name.split(".")[0] not in PACKAGES:
        return False
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    return spec is not None and bool(spec.origin) and str(spec.origin).endswith(".py")


def _closure(roots: "tuple[str, ...]") -> "dict[str, tuple[str, bool]]":
    """Every engine module the roots import at module level, transitively, with its parent packages:
    name -> (source path, is_package)."""
    import importlib.util
    import posixpath

    found: dict[str, tuple[str, bool]] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        spec = importlib.util.find_spec(name)
        if not _is_own_module(name) or spec is None or spec.origin is None:
            raise ValueError(f"hotload: {name} is not a module of {PACKAGES} with a source file")
        is_package = spec.submodule_search_locations is not None
        found[name] = (posixpath.abspath(spec.origin), is_package)
        parent = name.rpartition(".")[0]
        todo.extend([parent] if parent else [])
        todo.extend(_module_imports(name, spec.origin, is_package, _is_own_module))
    return found


def _order(name: str, graph: "dict[str, list[str]]", done: "set[str]", out: list[str]) -> None:
    """Post-order: a module after its parent package and what it imports (a cycle's back edge is skipped: that
    module is then left to the import system, as its own import would be; so is one of another bundle)."""
    if name in done or name not in graph:
        return
    done.add(name)
    parent = name.rpartition(".")[0]
    if parent:
        _order(parent, graph, done, out)
    for dep in graph[name]:
        _order(dep, graph, done, out)
    out.append(name)


def _compile(name: str, origin: str, optimize: int = 2) -> "Any":
    """The module's code; without docstrings (optimize=2) for the hot bundle, refused where that would change what it
    does. The cold bundle's is as the .pyc's (optimize=0): create's modules may assert."""
    import ast

    with open(origin, "rb") as f:
        source = f.read()
    if optimize == 0:
        return compile(source, origin, "exec", dont_inherit=True, optimize=0)
    for node in ast.walk(ast.parse(source, origin)):
        if isinstance(node, ast.Assert) or (isinstance(node, ast.Name) and node.id in ("__doc__", "__debug__")):
            raise ValueError(f"hotload: {name} ({origin}:{node.lineno}) asserts or reads __doc__: keep it out of ROOTS")
    return compile(source, origin, "exec", dont_inherit=True, optimize=2)


def _pack(
    modules: "dict[str, tuple[str, bool]]", optimize: int, head: "tuple[Any, str, int, int]", cold: "Any"
) -> bytes:
    """A bundle's bytes: the magic, the header's length, the header (`head`, the entries, `cold`), the codes."""
    known = set(modules)
    graph = {name: _module_imports(name, origin, pkg, known.__contains__) for name, (origin, pkg) in modules.items()}
    codes: list[bytes] = []
    offset = 0
    entries: dict[str, Entry] = {}
    for name, (origin, is_package) in sorted(modules.items()):
        st = posix.stat(origin)
        order: list[str] = []
        _order(name, graph, set(), order)
        # Its parent packages are imported by importlib before it is asked for: not among what it runs first.
        deps = tuple(dep for dep in order[:-1] if not name.startswith(dep + "."))
        code = marshal.dumps(_compile(name, origin, optimize))
        entries[name] = (origin, is_package, st.st_mtime_ns, st.st_size, offset, len(code), deps)
        codes.append(code)
        offset += len(code)
    header = marshal.dumps((*head, entries, cold))
    start = 8 + len(header)
    # The offsets in the header are from the start of the codes: make them from the start of the file.
    entries = {name: (*e[:4], e[4] + start, *e[5:]) for name, e in entries.items()}  # type: ignore[misc]
    header2 = marshal.dumps((*head, entries, cold))
    if len(header2) != len(header):
        raise ValueError("hotload: the header's length changed with its offsets")  # marshal's ints: fixed width
    return magic() + len(header2).to_bytes(4, "little") + header2 + b"".join(codes)


def render(
    roots: "tuple[str, ...]" = ROOTS, cold_roots: "tuple[str, ...]" = COLD_ROOTS, cold_path: str = ""
) -> tuple[bytes, bytes]:
    """The hot bundle's bytes and the cold one's (at `cold_path`, which the hot one names), from the sources now."""
    import posixpath

    hot = _closure(roots)
    cold = {name: found for name, found in _closure(cold_roots).items() if name not in hot}
    cold_data = _pack(cold, 0, (None, "", 0, 0), ("", frozenset()))
    # This module's own code goes in the hot header: the launcher runs it to install the finder (it cannot import
    # it: finding and loading it is what the bundle saves).
    own = posixpath.abspath(hotload.__file__)
    st = posix.stat(own)
    head = (_compile("engine.hotload", own), own, st.st_mtime_ns, st.st_size)
    return _pack(hot, 2, head, (cold_path, frozenset(cold))), cold_data


def build(path: str, roots: "tuple[str, ...]" = ROOTS, cold_roots: "tuple[str, ...]" = COLD_ROOTS) -> int:
    """Write the bundles (atomically: a command reading one meanwhile sees the old one or the new; the cold one
    first, which the new hot one names); their module count."""
    import os

    from state.store import write_file_atomically

    cold_path = path.replace("/hot.", "/cold.")
    hot, cold = render(roots, cold_roots, cold_path)
    os.makedirs(path.rpartition("/")[0], exist_ok=True)
    for target, data in ((cold_path, cold), (path, hot)):
        write_file_atomically(target, data)
        os.chmod(target, 0o644)  # as a .pyc: whoever may run engine may read its code
    return sum(len(header[4]) for header in (read_header(hot), read_header(cold)) if header)


def main() -> int:
    import posixpath

    path = bundle_path(posixpath.abspath(hotload.__file__).rpartition("/")[0])
    print(f"hotload: {build(path)} modules in {path} and its cold twin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
