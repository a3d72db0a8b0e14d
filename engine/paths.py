"""os.path's abspath and exists for the hot commands, which do not import os.

`import os` costs every command ~1 ms (its _collections_abc ABCs, os.environ), a third of what `engine state`
costs above the interpreter's own start. The hot commands call the kernel through posix, the C module whose
functions os re-exports, and need only this of os.path: --root and --log made absolute, and whether a file exists.
"""

import posix


def absolute(path: str) -> str:
    """os.path.abspath(path). An absolute path that is already normal (no empty, "." or ".." component: what
    supervisors pass) is returned as it is; anything else is left to posixpath, imported only then."""
    if path == "/" or (path.startswith("/") and not {"", ".", ".."} & set(path[1:].split("/"))):
        return path
    import posixpath

    return posixpath.abspath(path)


def exists(path: str) -> bool:
    """os.path.exists(path): whether stat(2) finds it (through symlinks)."""
    try:
        posix.stat(path)
    except (OSError, ValueError):
        return False
    return True
