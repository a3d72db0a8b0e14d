"""What `engine create` refuses up front when run by a user (runc's rootless validation, configs/validate).

- a user namespace: without one the container's root would be the caller, holding no capability over any
  namespace it could make;
- uid=/gid= mount options must name ids the container's user namespace maps (devpts gid=5 in a config made
  for root is the usual one): the kernel answers EINVAL otherwise, which says nothing.

The id mappings themselves are checked when they are written (engine/rootless/idmap.py).
"""

from __future__ import annotations

import os

from engine.errors import ConfigError
from engine.rootless import unprivileged

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from engine.spec.typed import IDMapping, Spec


def mapped(container_id: int, mappings: list[IDMapping]) -> bool:
    return any(m["containerID"] <= container_id < m["containerID"] + m["size"] for m in mappings)


def check_config(config: Spec) -> None:
    if not unprivileged():
        return
    linux = config.get("linux", {})
    namespaces = linux.get("namespaces", [])
    user_ns = next((ns for ns in namespaces if ns["type"] == "user"), None)
    if user_ns is None:
        raise ConfigError(
            f"config.json: linux.namespaces: run by uid {os.geteuid()} (rootless), the container needs a user"
            " namespace mapping your ids (`engine spec --rootless` writes such a config)"
        )
    if user_ns.get("path"):
        return  # its mappings are the ones that namespace already has
    for i, mount in enumerate(config.get("mounts", [])):
        for option in mount.get("options", []):
            name, eq, value = option.partition("=")
            if not eq or name not in ("uid", "gid") or not value.isdigit():
                continue
            key, mappings = (
                ("uidMappings", linux.get("uidMappings"))
                if name == "uid"
                else ("gidMappings", linux.get("gidMappings"))
            )
            if not mapped(int(value), mappings or []):
                raise ConfigError(
                    f"config.json: mounts[{i}].options: {option} is not mapped by linux.{key} (rootless: map it,"
                    " or drop the option)"
                )
