"""The default --root: /run/engine for root, $XDG_RUNTIME_DIR/engine for everyone else (runc: /run/runc and
$XDG_RUNTIME_DIR/runc). An explicit --root always wins.

Every command resolves it, `engine state` included: stdlib only, a getenv and a stat or two.

As runc (shouldHonorXDGRuntimeDir): a user's XDG_RUNTIME_DIR counts when the caller is not root, or is root
only inside a user namespace (podman's rootless pause process) and $USER is not "root"; the real root keeps
/run/engine even when its login session set XDG_RUNTIME_DIR=/run/user/0. Where runc falls back to /run/runc
without XDG_RUNTIME_DIR and fails there ("mkdir /run/runc: permission denied"), engine says what is missing.
The directory is made 0700 with the sticky bit, as runc makes its own: the XDG Base Directory specification
lets the system clean files in XDG_RUNTIME_DIR that are neither touched nor sticky.
"""

from __future__ import annotations

import os
import stat

from engine.errors import EngineError
from engine.rootless import running_in_user_namespace

ROOT_DEFAULT = "/run/engine"
NAME = "engine"


def default_root() -> str:
    """The state directory to use when --root was not given; raises EngineError (one line) when the caller
    is not root and has no usable XDG_RUNTIME_DIR."""
    euid = os.geteuid()
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if euid == 0 and (not xdg or os.environ.get("USER") == "root" or not running_in_user_namespace()):
        return ROOT_DEFAULT
    advice = f"set XDG_RUNTIME_DIR to your own runtime directory (usually /run/user/{euid}) or pass --root DIR"
    if not xdg:
        raise EngineError(f"XDG_RUNTIME_DIR is not set: run by uid {euid}, engine keeps its state there; {advice}")
    if not os.path.isabs(xdg):
        raise EngineError(f"XDG_RUNTIME_DIR {xdg!r} is not an absolute path; {advice}")
    try:
        st = os.stat(xdg)
    except OSError as err:
        raise EngineError(f"XDG_RUNTIME_DIR {xdg}: {err.strerror}; {advice}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise EngineError(f"XDG_RUNTIME_DIR {xdg} is not a directory; {advice}")
    if st.st_uid != euid:
        raise EngineError(f"XDG_RUNTIME_DIR {xdg} belongs to uid {st.st_uid}, not to uid {euid}; {advice}")
    root = os.path.join(xdg, NAME)
    try:
        os.mkdir(root, 0o700)
    except FileExistsError:
        return root
    except OSError as err:
        raise EngineError(f"cannot make the state directory {root}: {err.strerror}; {advice}") from None
    os.chmod(root, 0o700 | stat.S_ISVTX)
    return root
