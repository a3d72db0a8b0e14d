"""linux.resources.pids -> pids.max, the same file in v1 and v2."""

from __future__ import annotations

from engine.cgroups.fs import jpath
from engine.cgroups.values import number

KEY = "pids"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from engine.spec.typed import Pids


def check(cg: Any, pids: Pids, w: str) -> None:
    if number(pids, "limit", w) is not None:
        cg.directory_for("pids", jpath(w, "limit"))


def apply(cg: Any, pids: Pids, w: str) -> None:
    limit = number(pids, "limit", w)
    if limit is None:
        return
    where = jpath(w, "limit")
    # config-linux.md: 0 is a valid limit ("SHOULD be treated as such"); -1 (any negative) is "max".
    cg.write(where, cg.directory_for("pids", where), "pids.max", "max" if limit < 0 else str(limit))
