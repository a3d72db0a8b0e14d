"""engine update [--resources FILE | flags] <id>: change a created, running or paused container's cgroup
resources, as `runc update` (containerd and podman call it). The resources are validated with the spec models;
flags override the file's values."""

from __future__ import annotations

from engine.cli import Context
from engine.errors import EngineError
from state.rules import ALIVE
from state.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

# flag -> (section, key) in linux.resources
FLAGS = {
    "memory": ("memory", "limit"),
    "memory_swap": ("memory", "swap"),
    "pids_limit": ("pids", "limit"),
    "cpu_shares": ("cpu", "shares"),
    "cpu_quota": ("cpu", "quota"),
    "cpu_period": ("cpu", "period"),
    "cpuset_cpus": ("cpu", "cpus"),
    "cpuset_mems": ("cpu", "mems"),
}


def resources_from(args: argparse.Namespace) -> dict[str, Any]:
    from engine.spec.document import load_resources  # the spec models, compiled: no pydantic

    resources: dict[str, Any] = {}
    if args.resources:
        path = "/dev/stdin" if args.resources == "-" else args.resources
        resources = load_resources(path)
    for flag, (section, key) in FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            resources.setdefault(section, {})[key] = value
    if not resources:
        raise EngineError("update: nothing to change: give --resources or a resource flag")
    return resources


def run(ctx: Context, args: argparse.Namespace) -> int:
    from engine.cgroups import CgroupError, load_manager

    resources = resources_from(args)
    store = Store(ctx.root)
    with store.locked(args.container_id) as dir_fd:
        record = store.load(args.container_id, dir_fd)
        status = record.observed_status()
        if status not in ALIVE:
            raise EngineError(f"cannot update container {args.container_id!r}: it is {status}")
        if not record.cgroups:
            raise EngineError(f"container {args.container_id!r} has no cgroups to update")
        try:
            load_manager(record.cgroups, warn=ctx.log.warning).update(resources)
        except CgroupError as err:
            raise EngineError(str(err)) from None
    return 0
