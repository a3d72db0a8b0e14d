"""linux.resources.network -> net_cls.classid and net_prio.ifpriomap (cgroup v1 only).

cgroup v2 has no such controllers; config-linux.md, Unified: "If the conversion is not possible the runtime MUST
generate an error" (runc ignores them there).
"""

from __future__ import annotations

from engine.cgroups.fs import fail, jpath
from engine.cgroups.values import number

KEY = "network"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from engine.spec.typed import Network


def check(cg: Any, net: Network, w: str) -> None:
    if cg.v2:
        raise fail(w, "cgroup v2 has no net_cls/net_prio controllers; tag traffic with eBPF or nftables instead")
    if number(net, "classID", w) is not None:
        cg.directory_for("net_cls", jpath(w, "classID"))
    priorities = net.get("priorities", [])
    if priorities:
        cg.directory_for("net_prio", jpath(w, "priorities"))
    for i, entry in enumerate(priorities):
        wp = jpath(w, "priorities", i)
        if not entry.get("name") or number(entry, "priority", wp) is None:
            raise fail(wp, "needs name and priority")


def apply(cg: Any, net: Network, w: str) -> None:
    class_id = number(net, "classID", w)
    if class_id is not None:
        where = jpath(w, "classID")
        cg.write(where, cg.directory_for("net_cls", where), "net_cls.classid", str(class_id))
    for i, entry in enumerate(net.get("priorities", [])):
        wp = jpath(w, "priorities", i)
        directory = cg.directory_for("net_prio", jpath(w, "priorities"))
        cg.write(wp, directory, "net_prio.ifpriomap", f"{entry['name']} {entry['priority']}")
