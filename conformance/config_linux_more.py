"""config-linux.md beyond config_linux.py: devices, masked and read-only paths, sysctl, user and time namespaces,
the cgroup namespace, a namespace path of the wrong type and the rootfs mount propagation.

Mostly observed from inside the container (run_inside); the rootfs propagation from the host, through the
created container's /proc/<pid>/mountinfo, after mounting something under its rootfs on the host.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conformance.bundle import SLEEP_FOREVER, shell
from conformance.config_mounts import (
    MOUNTINFO,
    host_mount,
    host_umount,
    parse_mountinfo,
    run_inside,
    section,
    top_mount,
)
from conformance.harness import Ctx
from conformance.registry import CheckSkipped, check, expect


def linux(**fields: Any) -> Any:
    def edit(config: dict[str, Any]) -> None:
        config["linux"].update(fields)

    return edit


STAT = "stat -c '%n|%F|%t:%T|%a|%u:%g'"


def stat_lines(text: str) -> dict[str, list[str]]:
    """`name|kind|major:minor (hex)|mode|uid:gid` lines of STAT, by name."""
    found = {}
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) == 5:
            found[fields[0]] = fields[1:]
    return found


# == Devices ================================================================================================


@check(
    "config-linux.md",
    "Devices",
    "devices (array of objects, OPTIONAL) lists devices that MUST be available in the container.",
    "The path MAY be anywhere in the container filesystem, notably outside of /dev.",
    "file mode for the device.",
    "id of device owner in the container namespace.",
    "id of device group in the container namespace.",
)
def devices_created(ctx: Ctx) -> str | None:
    devices = [
        {"path": "/dev/conf-char", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 1000, "gid": 1001},
        {"path": "/dev/conf/block", "type": "b", "major": 7, "minor": 0, "fileMode": 0o640, "uid": 0, "gid": 6},
        {"path": "/dev/conf-fifo", "type": "p", "fileMode": 0o620},
        {"path": "/tmp/outside-dev", "type": "c", "major": 1, "minor": 5, "fileMode": 0o666},
    ]
    out = run_inside(ctx, f"{STAT} " + " ".join(d["path"] for d in devices), linux(devices=devices))
    seen = stat_lines(out)
    expected = {
        "/dev/conf-char": ["character special file", "1:3", "600", "1000:1001"],
        "/dev/conf/block": ["block special file", "7:0", "640", "0:6"],
        "/dev/conf-fifo": ["fifo", "0:0", "620", "0:0"],
        "/tmp/outside-dev": ["character special file", "1:5", "666", "0:0"],
    }
    wrong = {path: seen.get(path) for path, want in expected.items() if seen.get(path) != want}
    expect(not wrong, f"devices missing or wrong (kind, major:minor, mode, uid:gid): {wrong}; output {out!r}")
    return None


@check(
    "config-linux.md",
    "Devices",
    "If a file already exists at path that does not match the requested device, the runtime MUST generate an error.",
)
def devices_existing_file_error(ctx: Ctx) -> str | None:
    ctx.marker("not-a-device").write_text("a regular file\n")
    device = {"path": "/tmp/not-a-device", "type": "c", "major": 1, "minor": 3}
    cid = ctx.new_id()
    ctx.must_fail(ctx.create(cid, ctx.bundle(shell(SLEEP_FOREVER), edit=linux(devices=[device]))), "create")
    expect(not ctx.exists(cid), "a container exists after the failed create")
    expect(ctx.marker("not-a-device").read_text() == "a regular file\n", "the existing file was changed")
    return None


@check(
    "config-linux.md",
    "Default Devices",
    "In addition to any devices configured with this setting, the runtime MUST also supply:",
    "A bind-mount or symlink of the container's /dev/pts/ptmx.",
)
def default_devices(ctx: Ctx) -> str | None:
    names = ["null", "zero", "full", "random", "urandom", "tty"]
    script = (
        f"echo == stat; {STAT} " + " ".join(f"/dev/{n}" for n in names) + "; "
        "echo == ptmx; stat -L -c '%d:%i' /dev/ptmx /dev/pts/ptmx"
    )
    out = run_inside(ctx, script)
    seen = stat_lines(section(out, "stat"))
    numbers = {"null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8", "urandom": "1:9", "tty": "5:0"}
    wrong = {
        f"/dev/{n}": seen.get(f"/dev/{n}", [None])[:2]
        for n in names
        if seen.get(f"/dev/{n}", [None])[:2] != ["character special file", numbers[n]]
    }
    expect(not wrong, f"default devices missing or wrong (kind, major:minor in hex): {wrong}")
    ptmx = section(out, "ptmx").split()
    expect(len(ptmx) == 2 and ptmx[0] == ptmx[1], f"/dev/ptmx is not /dev/pts/ptmx (device:inode {ptmx})")
    return None


# == Masked and read-only paths ===========================================================================


@check(
    "config-linux.md",
    "Masked Paths",
    "maskedPaths (array of strings, OPTIONAL) will mask over the provided paths inside the container so that they "
    "cannot be read.",
)
def masked_paths(ctx: Ctx) -> str | None:
    ctx.marker("masked-file").write_text("secret\n")
    (ctx.marker("masked-dir")).mkdir()
    (ctx.marker("masked-dir") / "inside").write_text("secret\n")
    script = "echo == file; cat /tmp/masked-file; echo == dir; ls -A /tmp/masked-dir; echo == end"
    out = run_inside(ctx, script, linux(maskedPaths=["/tmp/masked-file", "/tmp/masked-dir"]))
    expect("secret" not in section(out, "file"), "the masked file can be read")
    expect("inside" not in section(out, "dir"), "the masked directory's contents can be listed")
    expect(ctx.marker("masked-file").read_text() == "secret\n", "masking changed the file itself")
    return None


@check(
    "config-linux.md",
    "Readonly Paths",
    "readonlyPaths (array of strings, OPTIONAL) will set the provided paths as readonly inside the container.",
)
def readonly_paths(ctx: Ctx) -> str | None:
    ctx.marker("ro-dir").mkdir(mode=0o777)
    script = (
        "touch /tmp/ro-dir/x 2>/dev/null && echo ro-dir-written; touch /tmp/rw-file && echo rw-written; "
        f"echo == mountinfo; {MOUNTINFO}"
    )
    out = run_inside(ctx, script, linux(readonlyPaths=["/tmp/ro-dir"]))
    expect("ro-dir-written" not in out, "a file could be created in the read-only path")
    expect("rw-written" in out, "the rest of /tmp became read-only too")
    mount = top_mount(parse_mountinfo(section(out, "mountinfo")), "/tmp/ro-dir")
    expect("ro" in mount.options, f"/tmp/ro-dir is mounted {sorted(mount.options)}")
    return None


# == Sysctl =================================================================================================


@check(
    "config-linux.md",
    "Sysctl",
    "sysctl (object, OPTIONAL) allows kernel parameters to be modified at runtime for the container.",
)
def sysctl_applied(ctx: Ctx) -> str | None:
    # Both are namespaced (network, ipc), and the suite's configs give the container its own of each.
    wanted = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "12345678"}
    host_before = {k: Path("/proc/sys/" + k.replace(".", "/")).read_text().strip() for k in wanted}
    script = "; ".join(f"echo {k}=$(cat /proc/sys/{k.replace('.', '/')})" for k in wanted)
    out = run_inside(ctx, script, linux(sysctl=wanted))
    seen = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    expect(seen == wanted, f"the container sees {seen}, expected {wanted}")
    host_after = {k: Path("/proc/sys/" + k.replace(".", "/")).read_text().strip() for k in wanted}
    expect(host_after == host_before, f"the runtime's own values changed: {host_before} -> {host_after}")
    return None


# == Namespaces =============================================================================================


@check(
    "config-linux.md",
    "Namespaces",
    "The runtime MUST generate an error if path is not associated with a namespace of type type.",
)
def namespaces_path_wrong_type(ctx: Ctx) -> str | None:
    uts_of_suite = f"/proc/{os.getpid()}/ns/uts"

    def network_is_uts(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"] = [
            {"type": "network", "path": uts_of_suite} if ns["type"] == "network" else ns
            for ns in config["linux"]["namespaces"]
        ]

    cid = ctx.new_id()
    ctx.must_fail(ctx.create(cid, ctx.bundle(shell(SLEEP_FOREVER), edit=network_is_uts)), "create")
    expect(not ctx.exists(cid), "a container exists after the failed create")
    return None


MAPPING = [{"containerID": 0, "hostID": 100000, "size": 65536}]


@check(
    "config-linux.md",
    "User namespace mappings",
    "uidMappings (array of objects, OPTIONAL) describes the user namespace uid mappings from the host to the "
    "container.",
    "gidMappings (array of objects, OPTIONAL) describes the user namespace gid mappings from the host to the "
    "container.",
    "The runtime SHOULD NOT modify the ownership of referenced filesystems to realize the mapping.",
)
def user_namespace_mappings(ctx: Ctx) -> str | None:
    def userns(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = MAPPING
        config["linux"]["gidMappings"] = MAPPING

    owner_before = (ctx.rootfs / "bin").stat().st_uid
    # The container's root is host uid 100000, and a runtime may resolve bind-mount sources (the shared /tmp) as
    # that user: let it traverse the suite's private temp directory, so that this check is about the mappings.
    ctx.dir.parent.chmod(0o711)
    script = "echo == uid; cat /proc/self/uid_map; echo == gid; cat /proc/self/gid_map; echo == id; id -u; id -g"
    out = run_inside(ctx, script, userns)
    for name in ("uid", "gid"):
        expect(section(out, name).split() == ["0", "100000", "65536"], f"{name}_map is {section(out, name)!r}")
    expect(section(out, "id").split() == ["0", "0"], f"the process is {section(out, 'id').split()} inside")
    # The file the container's root wrote belongs to the host id that container id 0 maps to.
    owner = ctx.marker("out").stat()
    expect((owner.st_uid, owner.st_gid) == (100000, 100000), f"its file is {owner.st_uid}:{owner.st_gid} on the host")
    expect((ctx.rootfs / "bin").stat().st_uid == owner_before, "the rootfs ownership was changed")
    return None


@check(
    "config-linux.md",
    "Offset for Time Namespace",
    "timeOffsets (object, OPTIONAL) sets the offset for Time Namespace.",
    "is the offset of clock (in seconds) in the container.",
)
def time_namespace_offsets(ctx: Ctx) -> str | None:
    if not os.path.exists("/proc/self/ns/time"):
        raise CheckSkipped("the kernel has no time namespaces")
    offset = 10 * 86400

    def timens(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"].append({"type": "time"})
        config["linux"]["timeOffsets"] = {"boottime": {"secs": offset, "nanosecs": 0}, "monotonic": {"secs": 3600}}

    host = float(Path("/proc/uptime").read_text().split()[0])
    out = run_inside(ctx, "cat /proc/uptime", timens)
    inside = float(out.split()[0])
    # /proc/uptime is CLOCK_BOOTTIME: shifted by the offset, give or take the time the container took.
    expect(host + offset <= inside < host + offset + 60, f"uptime {inside} inside, {host} outside: offset not {offset}")
    return None


@check(
    "config-linux.md",
    "Namespaces",
    "cgroup the container will have an isolated view of the cgroup hierarchy.",
)
def cgroup_namespace_view(ctx: Ctx) -> str | None:
    if not os.path.exists("/proc/self/ns/cgroup"):
        raise CheckSkipped("the kernel has no cgroup namespaces")

    def cgroupns(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"].append({"type": "cgroup"})
        config["linux"]["cgroupsPath"] = f"/{ctx.dir.name}-{os.getpid()}"

    out = run_inside(ctx, "cat /proc/self/cgroup", cgroupns)
    paths = [line.split(":", 2)[2] for line in out.splitlines() if line.count(":") >= 2]
    expect(paths and all(p == "/" for p in paths), f"the container sees its cgroups as {paths}, expected all /")
    return None


# == Rootfs mount propagation ==============================================================================


@contextlib.contextmanager
def shared_rootfs(ctx: Ctx) -> Iterator[Path]:
    """The suite's rootfs bind-mounted at <check dir>/rootfs and made a shared mount on the host: what the host
    mounts under it then propagates to every peer and slave (or not, to a private copy)."""
    path = ctx.dir / "rootfs"
    path.mkdir()
    host_mount("--bind", str(ctx.rootfs), str(path))
    try:
        host_mount("--make-shared", str(path))
        yield path
    finally:
        host_umount(path)


def created_mountinfo(ctx: Ctx, propagation: str, probe: bool) -> list[Any]:
    """Create (not start) a container on the shared rootfs with rootfsPropagation `propagation`; if `probe`, mount
    a tmpfs on the host at <rootfs>/home afterwards. Return the container's mountinfo."""

    def edit(config: dict[str, Any]) -> None:
        config["root"]["path"] = str(ctx.dir / "rootfs")
        config["linux"]["rootfsPropagation"] = propagation

    with shared_rootfs(ctx) as rootfs:
        _, _, state = ctx.created(shell(SLEEP_FOREVER), edit=edit)
        pid = state.get("pid")
        expect(type(pid) is int and pid > 0, f"pid is {pid!r} when created")
        if probe:
            host_mount("-t", "tmpfs", "-o", "size=1m", "conformance-probe", str(rootfs / "home"))
        return parse_mountinfo(Path(f"/proc/{pid}/mountinfo").read_text())


@check(
    "config-linux.md",
    "Rootfs Mount Propagation",
    "slave: the rootfs mount receives propagation events from the host (e.g. if something is mounted on the host "
    "it will also appear in the container) but not the other way around.",
)
def rootfs_propagation_slave(ctx: Ctx) -> str | None:
    mounts = created_mountinfo(ctx, "slave", probe=True)
    expect(
        any(m.point == "/home" and m.source == "conformance-probe" for m in mounts),
        "the host's mount at <rootfs>/home did not appear in the container",
    )
    return None


@check(
    "config-linux.md",
    "Rootfs Mount Propagation",
    "private: the rootfs mount doesn't receive mount propagation events from the host and further mounts in nested "
    "containers will be isolated from the host and from the rootfs (even if the nested container rootfsPropagation "
    "option is shared).",
)
def rootfs_propagation_private(ctx: Ctx) -> str | None:
    mounts = created_mountinfo(ctx, "private", probe=True)
    expect(
        not any(m.source == "conformance-probe" for m in mounts),
        "the host's mount at <rootfs>/home appeared in the container",
    )
    root = top_mount(mounts, "/")
    expect(not root.optional, f"the rootfs mount is not private: {root.optional}")
    return None


@check(
    "config-linux.md",
    "Rootfs Mount Propagation",
    "shared: the rootfs mount belongs to a new peer group.",
)
def rootfs_propagation_shared(ctx: Ctx) -> str | None:
    mounts = created_mountinfo(ctx, "shared", probe=False)
    root = top_mount(mounts, "/")
    groups = [f for f in root.optional if f.startswith("shared:")]
    expect(groups, f"the rootfs mount is in no peer group: {root.optional or 'no optional fields'}")
    host = [m for m in parse_mountinfo(Path("/proc/self/mountinfo").read_text()) if m.point == str(ctx.dir / "rootfs")]
    expect(not host or groups[0] not in host[-1].optional, f"the rootfs mount is in the host's peer group {groups[0]}")
    return None


@check(
    "config-linux.md",
    "Rootfs Mount Propagation",
    "unbindable: the rootfs mount is a private mount that cannot be bind-mounted.",
)
def rootfs_propagation_unbindable(ctx: Ctx) -> str | None:
    root = top_mount(created_mountinfo(ctx, "unbindable", probe=False), "/")
    expect(root.optional == ["unbindable"], f"the rootfs mount's propagation is {root.optional or 'private'}")
    return None
