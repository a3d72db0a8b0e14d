"""config-linux.md: the Linux-specific configuration, observed from the host on the created container."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conformance.bundle import SLEEP_FOREVER, shell
from conformance.harness import Ctx
from conformance.registry import check, expect


def ns_of(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def created_pid(state: dict[str, Any]) -> int:
    pid = state.get("pid")
    expect(type(pid) is int and pid > 0, f"pid is {pid!r} when created")
    assert isinstance(pid, int)
    return pid


@check(
    "config-linux.md",
    "Namespaces",
    "If a namespace type is not specified in the namespaces array, the container MUST inherit the runtime "
    "namespace of that type.",
)
def namespaces_inherited_when_absent(ctx: Ctx) -> str | None:
    def only_pid_mount_uts(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"] = [{"type": t} for t in ("pid", "mount", "uts")]

    _, _, state = ctx.created(shell(SLEEP_FOREVER), edit=only_pid_mount_uts)
    pid = created_pid(state)
    # The runtime namespace is the one the runtime was started in: the suite's own.
    for kind in ("net", "ipc"):
        expect(ns_of(pid, kind) == ns_of("self", kind), f"the container got a new {kind} namespace unasked")
    expect(ns_of(pid, "uts") != ns_of("self", "uts"), "the uts namespace that was asked for is not new")
    return None


@check(
    "config-linux.md",
    "Namespaces",
    "The runtime MUST place the container process in the namespace associated with that path.",
)
def namespaces_path_joined(ctx: Ctx) -> str | None:
    _, _, first = ctx.created(shell(SLEEP_FOREVER), name="first")
    first_pid = created_pid(first)

    def join_first(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"] = [
            {"type": "network", "path": f"/proc/{first_pid}/ns/net"} if ns["type"] == "network" else ns
            for ns in config["linux"]["namespaces"]
        ]

    _, _, second = ctx.created(shell(SLEEP_FOREVER), name="second", edit=join_first)
    pid = created_pid(second)
    expect(ns_of(pid, "net") == ns_of(first_pid, "net"), "the container is not in the network namespace at path")
    expect(ns_of(pid, "ipc") != ns_of(first_pid, "ipc"), "the ipc namespace (no path) was shared, not created")
    return None


@check(
    "config-linux.md",
    "Namespaces",
    "If a namespaces field contains duplicated namespaces with same type, the runtime MUST generate an error.",
)
def namespaces_duplicate_error(ctx: Ctx) -> str | None:
    def duplicate(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"].append({"type": "uts"})

    cid = ctx.new_id()
    ctx.must_fail(ctx.create(cid, ctx.bundle(shell(SLEEP_FOREVER), edit=duplicate)), "create with two uts namespaces")
    expect(not ctx.exists(cid), "a container exists after the failed create")
    return None


@check(
    "config-linux.md",
    "Cgroups Path",
    "In the case of an absolute path (starting with /), the runtime MUST take the path to be relative to the "
    "cgroups mount point.",
)
def cgroups_path_absolute(ctx: Ctx) -> str | None:
    cid = ctx.new_id()
    wanted = f"/{cid}"

    def with_path(config: dict[str, Any]) -> None:
        config["linux"]["cgroupsPath"] = wanted

    ctx.must(ctx.create(cid, ctx.bundle(shell(SLEEP_FOREVER), edit=with_path)), "create")
    pid = created_pid(ctx.state(cid))
    ours = dict(line.split(":", 2)[1:] for line in Path("/proc/self/cgroup").read_text().splitlines())
    theirs = dict(line.split(":", 2)[1:] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines())
    placed = sorted(c or "cgroup2" for c, path in theirs.items() if path == wanted)
    # In every hierarchy the container is either at cgroupsPath or (a controller the runtime left alone)
    # where the runtime itself is; anywhere else is not "relative to the cgroups mount point".
    elsewhere = {c or "cgroup2": path for c, path in theirs.items() if path not in (wanted, ours.get(c))}
    expect(placed, f"the container process is in no cgroup at {wanted}: {theirs}")
    expect(not elsewhere, f"the container process is in cgroups other than {wanted}: {elsewhere}")
    return f"at {wanted} in {', '.join(placed)}"
