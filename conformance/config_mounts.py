"""config.md "Root" and "Mounts" (with the Linux mount options), observed from inside the container.

The container's program writes what it sees (its /proc/self/mountinfo, the result of a write) into /tmp, the
check's shared directory, and the check parses it on the host. Mount points that do not exist in the shared
read-only rootfs are made under /tmp (a host directory of the check's own), never in the rootfs.

The helpers at the top (run_inside, mountinfo parsing, host mounts) are shared with config_process.py and
config_linux_more.py.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.bundle import SHARED_IN_CONTAINER, shell
from conformance.harness import Ctx
from conformance.registry import CheckSkipped, check, expect

Edit = Callable[[dict[str, Any]], None]
OUT = "out"  # /tmp/out in the container, ctx.marker(OUT) on the host


def run_inside(ctx: Ctx, script: str, edit: Edit | None = None, *, name: str = "bundle") -> str:
    """Create and start a container running `script` (stdout and stderr to /tmp/out); wait for it to stop and
    return what it wrote."""
    out = f"{SHARED_IN_CONTAINER}/{OUT}"
    ctx.shared.chmod(0o1777)  # like a real /tmp: a non-root or user-namespaced program can write its output
    cid, _, _ = ctx.created(shell(f"{{ {script}\n}} > {out}.part 2>&1; mv {out}.part {out}"), name=name, edit=edit)
    ctx.must(ctx.rt("start", cid), "start")
    ctx.wait_status(cid, "stopped")
    expect(ctx.wait_file(ctx.marker(OUT)), "the container's program did not finish writing /tmp/out")
    return ctx.marker(OUT).read_text()


def edits(*functions: Edit) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        for function in functions:
            function(config)

    return edit


def add_mounts(*mounts: dict[str, Any]) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        config["mounts"].extend(mounts)

    return edit


@dataclass
class MountLine:
    """One line of /proc/<pid>/mountinfo (proc(5))."""

    mount_id: str
    parent_id: str
    root: str
    point: str
    options: set[str]  # per-mount options: ro/rw, nosuid, nodev, noexec, relatime...
    optional: list[str]  # shared:N, master:N, propagate_from:N, unbindable
    fstype: str
    source: str
    super_options: set[str]

    @property
    def propagation(self) -> set[str]:
        return {field.split(":")[0] for field in self.optional}


def parse_mountinfo(text: str) -> list[MountLine]:
    lines = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue  # a line of something else the script printed
        fields, rfields = left.split(), right.split()
        if len(fields) < 6 or len(rfields) < 3:
            continue
        lines.append(
            MountLine(
                mount_id=fields[0],
                parent_id=fields[1],
                root=fields[3].replace("\\040", " "),
                point=fields[4].replace("\\040", " "),
                options=set(fields[5].split(",")),
                optional=fields[6:],
                fstype=rfields[0],
                source=rfields[1],
                super_options=set(rfields[2].split(",")),
            )
        )
    return lines


def top_mount(mounts: list[MountLine], point: str) -> MountLine:
    """The mount visible at `point` (the last one listed there: later mounts stack on top)."""
    found = [m for m in mounts if m.point == point]
    expect(found, f"no mount at {point} in the container's mountinfo")
    return found[-1]


def section(text: str, name: str) -> str:
    """The lines between `== name` and the next `== ` line of a script's output."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("== "):
            inside = line == f"== {name}"
        elif inside:
            lines.append(line)
    return "\n".join(lines)


def host_mount(*args: str) -> None:
    """mount(8) on the host; a failure means the host cannot run this check."""
    result = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise CheckSkipped(f"host `mount {' '.join(args)}` failed: {result.stderr.strip()}")


def host_umount(path: Path) -> None:
    subprocess.run(["umount", "-R", "-l", str(path)], capture_output=True, timeout=10)


@contextlib.contextmanager
def host_tmpfs(path: Path, *, shared: bool = False) -> Iterator[Path]:
    """A tmpfs mounted at `path` on the host (made a shared mount if asked), always unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    host_mount("-t", "tmpfs", "-o", "size=1m", "conformance", str(path))
    try:
        if shared:
            host_mount("--make-shared", str(path))
        yield path
    finally:
        host_umount(path)


MOUNTINFO = "cat /proc/self/mountinfo"


# == Root ===================================================================================================


@check(
    "config.md",
    "Root",
    "readonly (bool, OPTIONAL) If true then the root filesystem MUST be read-only inside the container, "
    "defaults to false.",
)
def root_readonly(ctx: Ctx) -> str | None:
    script = f"echo == mountinfo; {MOUNTINFO}; echo == write; touch /.conformance-probe && echo written || echo refused"
    out = run_inside(ctx, script)  # the suite's configs say readonly: true
    root = top_mount(parse_mountinfo(section(out, "mountinfo")), "/")
    expect("ro" in root.options, f"root.readonly is true but / is mounted {','.join(sorted(root.options))}")
    expect("written" not in section(out, "write"), "root.readonly is true but a file could be created in /")

    def default_readonly(config: dict[str, Any]) -> None:
        del config["root"]["readonly"]

    # Only mountinfo is read: nothing writes into the shared rootfs.
    ctx.marker(OUT).unlink()
    root = top_mount(parse_mountinfo(run_inside(ctx, MOUNTINFO, default_readonly, name="default")), "/")
    expect("rw" in root.options, f"root.readonly absent (default false) but / is mounted {sorted(root.options)}")
    return None


# == Mounts =================================================================================================


@check("config.md", "Mounts", "The runtime MUST mount entries in the listed order.")
def mounts_listed_order(ctx: Ctx) -> str | None:
    # A tmpfs, a second tmpfs stacked on the same destination, then a mount inside it: in any other order the
    # visible /tmp/order is not the 2m one, or order/inner is hidden beneath a later mount.
    base = f"{SHARED_IN_CONTAINER}/order"
    ctx.marker("order").mkdir()
    edit = add_mounts(
        {"destination": base, "type": "tmpfs", "source": "first", "options": ["size=1m"]},
        {"destination": base, "type": "tmpfs", "source": "second", "options": ["size=2m"]},
        {"destination": f"{base}/inner", "type": "tmpfs", "source": "third", "options": ["size=3m"]},
    )
    mounts = parse_mountinfo(run_inside(ctx, MOUNTINFO, edit))
    at_base = [m for m in mounts if m.point == base]
    expect([m.source for m in at_base] == ["first", "second"], f"mounts at {base}: {[m.source for m in at_base]}")
    inner = top_mount(mounts, f"{base}/inner")
    expect(inner.source == "third", f"{base}/inner is {inner.source}")
    expect(inner.parent_id == at_base[-1].mount_id, f"{base}/inner is not on top of the second mount at {base}")
    return None


@check(
    "config.md",
    "Mounts",
    "For compatibility with old tools and configurations, it MAY be a relative path, in which case it MUST be "
    'interpreted as relative to "/".',
)
def mounts_relative_destination(ctx: Ctx) -> str | None:
    relative = SHARED_IN_CONTAINER.lstrip("/") + "/relative"
    ctx.marker("relative").mkdir()
    edit = add_mounts({"destination": relative, "type": "tmpfs", "source": "relative-dest"})
    mounts = parse_mountinfo(run_inside(ctx, MOUNTINFO, edit))
    expect(top_mount(mounts, "/" + relative).source == "relative-dest", f"destination {relative!r} not at /{relative}")
    return None


@check(
    "config.md",
    "Mounts",
    "Path values for bind mounts are either absolute or relative to the bundle.",
    "A mount is a bind mount if it has either bind or rbind in the options.",
)
def mounts_bind_file_and_directory(ctx: Ctx) -> str | None:
    # type "none" (not "bind"): the options alone make these bind mounts. The sources are a file relative to
    # the bundle and an absolute directory; the runtime must make a file and a directory as mount points.
    bundle = ctx.dir / "bundle"
    bundle.mkdir()
    (bundle / "data.txt").write_text("from the bundle\n")
    source_dir = ctx.dir / "srcdir"
    source_dir.mkdir()
    (source_dir / "inside").write_text("from the directory\n")
    edit = add_mounts(
        {"destination": f"{SHARED_IN_CONTAINER}/file", "type": "none", "source": "data.txt", "options": ["bind"]},
        {"destination": f"{SHARED_IN_CONTAINER}/dir", "type": "none", "source": str(source_dir), "options": ["rbind"]},
    )
    script = "cat /tmp/file; cat /tmp/dir/inside; [ -f /tmp/file ] && echo file-ok; [ -d /tmp/dir ] && echo dir-ok"
    out = run_inside(ctx, script, edit).splitlines()
    expect(out[:2] == ["from the bundle", "from the directory"], f"the container read {out[:2]}")
    expect("file-ok" in out and "dir-ok" in out, f"mount point kinds wrong: {out[2:]}")
    return None


# == Linux mount options ====================================================================================

OPTIONS_INTRO = "Runtimes MUST/SHOULD/MAY implement the following option strings for Linux:"


@check(
    "config.md",
    "Linux mount options",
    OPTIONS_INTRO,
    "ro | MUST | [^1]",
    "nosuid | MUST | [^1]",
    "nodev | MUST | [^1]",
    "noexec | MUST | [^1]",
)
def mount_options_flags(ctx: Ctx) -> str | None:
    source = ctx.dir / "flags"
    source.mkdir()
    edit = add_mounts(
        {
            "destination": f"{SHARED_IN_CONTAINER}/flags",
            "type": "bind",
            "source": str(source),
            "options": ["bind", "ro", "nosuid", "nodev", "noexec"],
        },
        {
            "destination": f"{SHARED_IN_CONTAINER}/tmpfs",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "noexec", "ro"],
        },
    )
    script = f"echo == mountinfo; {MOUNTINFO}; echo == write; touch /tmp/flags/x && echo written || echo refused"
    out = run_inside(ctx, script, edit)
    mounts = parse_mountinfo(section(out, "mountinfo"))
    for point in ("/tmp/flags", "/tmp/tmpfs"):
        missing = {"ro", "nosuid", "nodev", "noexec"} - top_mount(mounts, point).options
        expect(not missing, f"{point} lacks {sorted(missing)}")
    expect("written" not in section(out, "write"), "a file could be created on the ro bind mount")
    expect(not (source / "x").exists(), "the ro bind mount's source was written")
    return None


@check(
    "config.md",
    "Linux mount options",
    "Runtimes SHOULD treat unknown options as filesystem-specific ones) and pass those as a comma-separated "
    "string to the fifth (const void *data) argument of mount(2).",
)
def mount_options_filesystem_data(ctx: Ctx) -> str | None:
    ctx.marker("data").mkdir()
    edit = add_mounts(
        {
            "destination": f"{SHARED_IN_CONTAINER}/data",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "size=2m", "mode=710"],
        }
    )
    # The superblock options in mountinfo are what tmpfs was given as data. (runc then chmods the root of a tmpfs
    # mounted on an existing directory back to that directory's mode: the data still reached mount(2).)
    mount = top_mount(parse_mountinfo(run_inside(ctx, MOUNTINFO, edit)), "/tmp/data")
    missing = {"size=2048k", "mode=710"} - mount.super_options
    expect(not missing, f"{sorted(missing)} not applied: tmpfs options {sorted(mount.super_options)}")
    expect("nosuid" in mount.options, "nosuid (a flag, not data) not applied")
    return None


@check("config.md", "Linux mount options", OPTIONS_INTRO, "rro | SHOULD | Recursive ro [^3]")
def mount_options_recursive_ro(ctx: Ctx) -> str | None:
    source = ctx.dir / "tree"
    with host_tmpfs(source / "sub"):
        edit = add_mounts(
            {
                "destination": f"{SHARED_IN_CONTAINER}/tree",
                "type": "bind",
                "source": str(source),
                "options": ["rbind", "rro"],
            }
        )
        script = (
            f"echo == mountinfo; {MOUNTINFO}; echo == write; "
            "touch /tmp/tree/x 2>/dev/null && echo top-written; touch /tmp/tree/sub/x 2>/dev/null && echo sub-written; "
            "echo done"
        )
        out = run_inside(ctx, script, edit)
    mounts = parse_mountinfo(section(out, "mountinfo"))
    for point in ("/tmp/tree", "/tmp/tree/sub"):
        expect("ro" in top_mount(mounts, point).options, f"{point} is not read-only with rro")
    expect(section(out, "write").strip() == "done", f"writes succeeded: {section(out, 'write').split()}")
    return None


@check(
    "config.md",
    "Linux mount options",
    OPTIONS_INTRO,
    "shared | MUST | [^1]",
    "slave | MUST | Bind mount propagation [^2]",
    "private | MUST | Bind mount propagation [^2]",
    "unbindable | MUST | Bind mount propagation [^2]",
)
def mount_options_propagation(ctx: Ctx) -> str | None:
    # The propagation type shows in mountinfo's optional fields: shared:N, master:N (a slave), unbindable, and
    # none for private. A slave needs a shared master: a host tmpfs made shared, bind-mounted in.
    master = ctx.dir / "master"
    for name in ("shared", "slave", "private", "unbindable"):
        ctx.marker(name).mkdir()
    with host_tmpfs(master, shared=True):
        edit = add_mounts(
            {"destination": "/tmp/shared", "type": "tmpfs", "source": "tmpfs", "options": ["shared"]},
            {"destination": "/tmp/slave", "type": "bind", "source": str(master), "options": ["bind", "slave"]},
            {"destination": "/tmp/private", "type": "bind", "source": str(master), "options": ["bind", "private"]},
            {"destination": "/tmp/unbindable", "type": "tmpfs", "source": "tmpfs", "options": ["unbindable"]},
        )
        mounts = parse_mountinfo(run_inside(ctx, MOUNTINFO, edit))
    seen = {
        name: top_mount(mounts, f"/tmp/{name}").propagation for name in ("shared", "slave", "private", "unbindable")
    }
    wanted = {"shared": {"shared"}, "slave": {"master"}, "private": set(), "unbindable": {"unbindable"}}
    expect(seen == wanted, f"propagation (mountinfo optional fields) {seen}, expected {wanted}")
    return None
