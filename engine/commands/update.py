"""engine update [--resources FILE | flags] <id>: change a created, running or paused container's cgroup
resources, as `runc update` (containerd and podman call it).

runc 1.1.5's flags, with its parsing (checked side by side in tests/integration/test_runc_cgroups.py):

- --memory, --memory-reservation, --memory-swap, --kernel-memory, --kernel-memory-tcp: a size with an optional
  binary unit ("50M", "1.5g", "100b": convert.ram_in_bytes) or -1 for unlimited; kernel memory is ignored with a
  warning, as runc does (the kernel dropped kmem limits);
- --cpu-share (runc's spelling; engine's earlier --cpu-shares still works), --cpu-period, --cpu-rt-period:
  unsigned integers; --cpu-quota, --cpu-rt-runtime: integers (-1 is no limit); --cpuset-cpus, --cpuset-mems;
- --blkio-weight and --pids-limit: integers where 0 changes nothing (runc 1.1.5), a negative pids limit is "max";
- --l3-cache-schema, --mem-bw-schema: Intel RDT, which engine does not support: an error;
- an empty value changes nothing, as in runc. With --resources (a file, or - for stdin; validated with the spec
  models) the flags are ignored, as runc does, with a warning naming them.

One deliberate difference: `engine update ID` with nothing to change is an error (runc exits 0 having done
nothing), since a supervisor that sends no change has most likely lost its arguments.
"""

from __future__ import annotations

from engine.cli import Context
from engine.errors import EngineError
from state.rules import ALIVE
from state.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

# flag -> (linux.resources section, key, how the value is read)
FLAGS: dict[str, tuple[str, str, str]] = {
    "memory": ("memory", "limit", "size"),
    "memory-reservation": ("memory", "reservation", "size"),
    "memory-swap": ("memory", "swap", "size"),
    "kernel-memory": ("memory", "kernel", "size"),
    "kernel-memory-tcp": ("memory", "kernelTCP", "size"),
    "cpu-share": ("cpu", "shares", "unsigned"),
    "cpu-period": ("cpu", "period", "unsigned"),
    "cpu-rt-period": ("cpu", "realtimePeriod", "unsigned"),
    "cpu-quota": ("cpu", "quota", "signed"),
    "cpu-rt-runtime": ("cpu", "realtimeRuntime", "signed"),
    "cpuset-cpus": ("cpu", "cpus", "string"),
    "cpuset-mems": ("cpu", "mems", "string"),
    "blkio-weight": ("blockIO", "weight", "nonzero"),
    "pids-limit": ("pids", "limit", "nonzero"),
}
INTEL_RDT = ("l3-cache-schema", "mem-bw-schema")

HELP = {
    "memory": "memory limit (in bytes, or with a unit: 50M, 1g)",
    "memory-reservation": "memory reservation or soft limit (bytes or with a unit)",
    "memory-swap": "total memory usage (memory + swap); -1 for unlimited swap",
    "kernel-memory": "kernel memory limit (ignored with a warning, as runc)",
    "kernel-memory-tcp": "kernel memory limit for TCP buffers (ignored with a warning, as runc)",
    "cpu-share": "CPU shares (relative weight vs. other containers)",
    "cpu-period": "CPU CFS period (in usecs); 0 changes nothing",
    "cpu-rt-period": "CPU realtime period (in usecs); 0 changes nothing",
    "cpu-quota": "CPU CFS hard limit (in usecs) per period; -1 for none",
    "cpu-rt-runtime": "CPU realtime hard limit (in usecs) per period",
    "cpuset-cpus": "CPUs to use, e.g. 0-1",
    "cpuset-mems": "memory nodes to use",
    "blkio-weight": "block IO weight (10 to 1000); 0 changes nothing",
    "pids-limit": "maximum number of processes; 0 changes nothing, -1 is no limit",
}


def add_flags(p: argparse.ArgumentParser) -> None:
    """`engine update`'s flags (engine/cli.py builds the parser)."""
    import argparse

    p.add_argument("--resources", "-r", help="linux.resources JSON file ('-' for stdin); the flags are then ignored")
    for flag, text in HELP.items():
        p.add_argument(f"--{flag}", metavar="VALUE", help=text)
    p.add_argument("--cpu-shares", dest="cpu_share", help=argparse.SUPPRESS)  # engine's spelling before runc's
    for flag in INTEL_RDT:
        p.add_argument(f"--{flag}", metavar="SCHEMA", help="Intel RDT schema (not supported by engine)")
    p.add_argument("container_id", metavar="<container-id>")


def flag_value(flag: str, text: str) -> Any:
    """A flag's value in linux.resources, or None for "leave it alone"; EngineError with runc's wording."""
    from engine.cgroups import convert

    kind = FLAGS[flag][2]
    if kind == "string":
        return text
    try:
        if kind == "size":
            return -1 if text == "-1" else convert.ram_in_bytes(text)
        value = int(text, 10)
    except ValueError as err:
        reason = str(err) if kind == "size" else f"{text!r} is not {_KINDS[kind]}"
        raise EngineError(f"update: invalid value for --{flag}: {reason}") from None
    if kind == "unsigned" and text.startswith(("-", "+")):
        raise EngineError(f"update: invalid value for --{flag}: {text!r} is not {_KINDS[kind]}")
    return None if kind == "nonzero" and value == 0 else value


_KINDS = {"unsigned": "an unsigned integer", "signed": "an integer", "nonzero": "an integer"}


def resources_from(args: argparse.Namespace, warn: Any = None) -> dict[str, Any]:
    present = {flag: getattr(args, flag.replace("-", "_")) for flag in (*FLAGS, *INTEL_RDT)}
    present = {flag: text for flag, text in present.items() if text is not None}
    given = {flag: text for flag, text in present.items() if text != ""}  # an empty value changes nothing (runc)
    for flag in INTEL_RDT:
        if flag in given:
            raise EngineError(f"update: --{flag}: Intel RDT is not supported by engine (linux.intelRdt neither)")
    if args.resources:
        from engine.spec.document import load_resources  # the spec models, compiled: no pydantic

        if given and warn is not None:
            names = ", ".join(f"--{flag}" for flag in given)
            warn(f"update: {names} ignored: --resources gives all the changes (as with runc)")
        return load_resources(args.resources)
    resources: dict[str, Any] = {}
    for flag, text in given.items():
        section, key, _ = FLAGS[flag]
        value = flag_value(flag, text)
        if value is not None:
            resources.setdefault(section, {})[key] = value
    if not present:
        raise EngineError("update: nothing to change: give --resources or a resource flag")
    return resources


def run(ctx: Context, args: argparse.Namespace) -> int:
    from engine.cgroups import CgroupError, load_manager

    resources = resources_from(args, ctx.log.warning)
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
