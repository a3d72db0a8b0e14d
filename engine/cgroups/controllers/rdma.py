"""linux.resources.rdma -> rdma.max "<device> hca_handle=N hca_object=M", the same file in v1 and v2."""

from __future__ import annotations

from engine.cgroups.fs import fail, jpath
from engine.cgroups.values import number

KEY = "rdma"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from engine.spec.typed import Rdma


def _lines(rdma: dict[str, Rdma], w: str) -> list[tuple[str, str]]:
    out = []
    for device, limits in rdma.items():
        where = jpath(w, device)
        if not isinstance(limits, dict):
            raise fail(where, f"expected an object, got {limits!r}")
        handles, objects = number(limits, "hcaHandles", where), number(limits, "hcaObjects", where)
        if handles is None and objects is None:
            raise fail(where, "needs hcaHandles or hcaObjects (or both)")
        parts = [device]
        if handles is not None:
            parts.append(f"hca_handle={handles}")
        if objects is not None:
            parts.append(f"hca_object={objects}")
        out.append((where, " ".join(parts)))
    return out


def check(cg: Any, rdma: dict[str, Rdma], w: str) -> None:
    _lines(rdma, w)
    if cg.v2:
        from engine.cgroups.subtree import require_offered

        require_offered(cg.unified_mount, "rdma", w)
    else:
        cg.directory_for("rdma", w)


def apply(cg: Any, rdma: dict[str, Rdma], w: str) -> None:
    if cg.v2:
        from engine.cgroups.subtree import enable_controllers

        enable_controllers(cg.unified_mount, cg.unified_dir, ["rdma"], w)
    directory = cg.directory_for("rdma", w)
    for where, line in _lines(rdma, w):
        cg.write(where, directory, "rdma.max", line)
