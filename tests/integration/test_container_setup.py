"""The container's setup, proven from inside: a `sh -c` script prints what the container sees (mountinfo, stat,
/proc/self/status, limits, ids...) and the test parses it. Config sections: config.md Root, Mounts, Process, User,
Hostname; config-linux.md Namespaces, Devices, Masked/Readonly Paths, Sysctl, Rootfs Mount Propagation.

Bundles start from `engine spec`'s default (engine.spec.default) on the shared busybox rootfs, read-only. A test
that needs new mount points or planted files works on its own copy of the rootfs (`rootfs_copy`), never on the
shared one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.config_mounts import MountLine, parse_mountinfo, section, top_mount
from engine.spec.default import default_config
from tests import host
from tests.forked import CAP_SYS_RESOURCE, drop_capability
from tests.integration.conftest import Engine

Edit = Callable[[dict[str, Any]], None]

# capabilities(7)
CAP = {"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_SETUID": 7, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13}
CAP["CAP_AUDIT_WRITE"] = 29


def caps(*names: str) -> int:
    return sum(1 << CAP[n] for n in names)


def write_bundle(engine: Engine, script: str, edit: Edit | None = None, *, name: str = "bundle") -> Path:
    config = default_config(["sh", "-c", script], terminal=False)
    config["root"] = {"path": str(engine.rootfs), "readonly": True}
    if edit is not None:
        edit(config)
    bundle = engine.bundle_dir / name
    bundle.mkdir(exist_ok=True)
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def inside(engine: Engine, script: str, edit: Edit | None = None, *flags: str, name: str = "bundle") -> str:
    """`engine run` the script; its stdout (the container inherits engine's) is what the container saw."""
    bundle = write_bundle(engine, script, edit, name=name)
    result = engine("run", *flags, "--bundle", str(bundle), engine.new_id())
    assert result.returncode == 0, f"engine run failed ({result.returncode}): {result.stderr}\n{result.stdout}"
    return result.stdout


def create_fails(engine: Engine, edit: Edit, script: str = "true") -> str:
    """`engine create` must fail; returns its stderr. Nothing may be left (the fixture checks)."""
    cid = engine.new_id()
    result = engine("create", "--bundle", str(write_bundle(engine, script, edit)), cid)
    assert result.returncode != 0, f"create succeeded: {result.stdout}"
    assert engine("state", cid).returncode != 0
    return result.stderr


def with_(**top: Any) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        config.update(top)

    return edit


def process(**fields: Any) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        config["process"].update(fields)

    return edit


def linux(**fields: Any) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        config["linux"].update(fields)

    return edit


def root_at(path: Path, readonly: bool = True) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        config["root"] = {"path": str(path), "readonly": readonly}

    return edit


def add_mounts(*mounts: dict[str, Any]) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        config["mounts"].extend(mounts)

    return edit


def both(*edits: Edit) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        for e in edits:
            e(config)

    return edit


def status(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


@pytest.fixture
def rootfs_copy(tmp_path: Path, rootfs: Path) -> Path:
    """A private, writable copy of the busybox rootfs (2 MB)."""
    copy = tmp_path / "rootfs-copy"
    subprocess.run(["cp", "-a", str(rootfs), str(copy)], check=True)
    return copy


def host_mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@contextlib.contextmanager
def host_tmpfs(path: Path, *options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    host_mount("-t", "tmpfs", "-o", "size=1m", "hosttmpfs", str(path))
    try:
        for option in options:
            host_mount(option, str(path))
        yield path
    finally:
        subprocess.run(["umount", "-R", "-l", str(path)], check=False)


# == mounts =================================================================================================


def test_default_mounts(engine: Engine) -> None:
    out = inside(engine, "echo == mountinfo; cat /proc/self/mountinfo; echo == status; cat /proc/self/status")
    mounts = parse_mountinfo(section(out, "mountinfo"))
    by_point = {m.point: m for m in mounts}

    def check(point: str, fstype: str, options: set[str], super_options: set[str] = frozenset()) -> MountLine:
        m = top_mount(mounts, point)
        assert m.fstype == fstype, f"{point}: {m}"
        assert options <= m.options, f"{point}: options {m.options}, expected {options}"
        assert super_options <= m.super_options, f"{point}: {m.super_options}, expected {super_options}"
        return m

    check("/", mounts[0].fstype, {"ro"})  # root.readonly
    assert mounts[0].point == "/"
    check("/proc", "proc", {"rw"})
    dev = check("/dev", "tmpfs", {"rw", "nosuid"}, {"mode=755", "size=65536k"})
    assert "relatime" not in dev.options  # strictatime
    # newinstance: a devpts of our own; only a new instance shows ptmxmode.
    check("/dev/pts", "devpts", {"nosuid", "noexec"}, {"gid=5", "mode=620", "ptmxmode=666"})
    check("/dev/shm", "tmpfs", {"nosuid", "nodev", "noexec"}, {"size=65536k"})
    check("/dev/mqueue", "mqueue", {"nosuid", "nodev", "noexec"})
    check("/sys", "sysfs", {"ro", "nosuid", "nodev", "noexec"})
    # The cgroup mount follows the host's layout: one cgroup2 mount on a pure v2 host; a tmpfs with one mount
    # per hierarchy (each v1 hierarchy, and the cgroup2 one beside them) on a v1 or hybrid host.
    if host.cgroup_layout() == "v2":
        check("/sys/fs/cgroup", "cgroup2", {"ro", "nosuid", "nodev", "noexec"})
    else:
        check("/sys/fs/cgroup", "tmpfs", {"ro", "nosuid", "nodev", "noexec"})
        hierarchies = [m for m in mounts if m.point.startswith("/sys/fs/cgroup/")]
        assert hierarchies and all(m.fstype in ("cgroup", "cgroup2") and "ro" in m.options for m in hierarchies)
        on_host = {
            line.split(" - ")[0].split()[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split(" - ")[1].split()[0] in ("cgroup", "cgroup2")
        }
        assert on_host == {m.point for m in hierarchies}, sorted(by_point)  # every hierarchy, at its host name
    # Nothing the engine mounts propagates anywhere: no shared:/master: fields by default.
    assert not [m for m in mounts if m.optional], [m.point for m in mounts if m.optional]
    # The rest of the default config, from /proc/self/status: caps (bounding = permitted = effective as root),
    # no_new_privs, no seccomp.
    st = status(section(out, "status"))
    default = caps("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert {k: int(st[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")} == {
        "CapInh": 0,
        "CapPrm": default,
        "CapEff": default,
        "CapBnd": default,
        "CapAmb": 0,
    }
    assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "0"


@pytest.fixture
def host_tree(tmp_path: Path) -> Iterator[Path]:
    """<tmp>/tree with a file, and a tmpfs submount at tree/sub: the source of rbind/rro mounts."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "top").write_text("top\n")
    with host_tmpfs(tree / "sub"):
        (tree / "sub" / "deep").write_text("deep\n")
        yield tree


@pytest.fixture
def shared_host_dir(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs on the host made a shared mount: what a slave bind of it shows as master:N."""
    with host_tmpfs(tmp_path / "shared-src", "--make-shared") as path:
        yield path


def test_extra_mounts(
    engine: Engine, rootfs_copy: Path, tmp_path: Path, host_tree: Path, shared_host_dir: Path
) -> None:
    (tmp_path / "afile").write_text("file content\n")
    edit = both(
        root_at(rootfs_copy),
        add_mounts(
            # A file and a directory: the engine must make a file and a directory as mount points.
            {"destination": "/mnt/file", "type": "bind", "source": str(tmp_path / "afile"), "options": ["bind", "ro"]},
            {
                "destination": "/mnt/dir",
                "type": "none",
                "source": str(host_tree),
                "options": ["rbind", "nosuid", "nodev", "noexec"],
            },
            {"destination": "/mnt/rro", "type": "bind", "source": str(host_tree), "options": ["rbind", "rro"]},
            {"destination": "/mnt/tmpfs", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=710", "ro"]},
            {"destination": "/mnt/shared", "type": "tmpfs", "source": "tmpfs", "options": ["shared"]},
            {"destination": "/mnt/slave", "type": "bind", "source": str(shared_host_dir), "options": ["bind", "slave"]},
            {
                "destination": "/mnt/private",
                "type": "bind",
                "source": str(shared_host_dir),
                "options": ["bind", "private"],
            },
            {"destination": "/mnt/unbindable", "type": "tmpfs", "source": "tmpfs", "options": ["unbindable"]},
        ),
    )
    script = """
echo == mountinfo; cat /proc/self/mountinfo
echo == read; cat /mnt/file /mnt/dir/top /mnt/dir/sub/deep /mnt/rro/sub/deep
echo == write
echo x > /mnt/file && echo file-written
touch /mnt/rro/x && echo rro-top-written
touch /mnt/rro/sub/x && echo rro-sub-written
touch /mnt/dir/sub/x && echo dir-sub-written
echo == mode; stat -c %a /mnt/tmpfs
"""
    out = inside(engine, script, edit)
    mounts = parse_mountinfo(section(out, "mountinfo"))
    assert section(out, "read").split() == ["file", "content", "top", "deep", "deep"]
    # ro on a bind applies (remount) to that mount; rro to the submount too; a plain rbind leaves the submount rw.
    assert section(out, "write").split() == ["dir-sub-written"]
    assert "ro" in top_mount(mounts, "/mnt/file").options
    assert {"nosuid", "nodev", "noexec"} <= top_mount(mounts, "/mnt/dir").options
    assert "rw" in top_mount(mounts, "/mnt/dir/sub").options  # nosuid etc. are not recursive
    assert "ro" in top_mount(mounts, "/mnt/rro").options and "ro" in top_mount(mounts, "/mnt/rro/sub").options
    tmpfs = top_mount(mounts, "/mnt/tmpfs")
    assert "ro" in tmpfs.options and {"size=1024k", "mode=710"} <= tmpfs.super_options
    assert section(out, "mode").strip() == "710"
    propagation = {p: top_mount(mounts, f"/mnt/{p}").propagation for p in ("shared", "slave", "private", "unbindable")}
    assert propagation == {"shared": {"shared"}, "slave": {"master"}, "private": set(), "unbindable": {"unbindable"}}
    # The mount points were made of the right kind, inside the copy; the sources were not touched.
    assert (rootfs_copy / "mnt" / "file").is_file() and (rootfs_copy / "mnt" / "dir").is_dir()
    assert (tmp_path / "afile").read_text() == "file content\n"
    assert (host_tree / "sub" / "x").exists() and not (host_tree / "x").exists()  # only the rw submount written


@pytest.mark.parametrize(
    ("propagation", "fields"),
    [(None, set()), ("private", set()), ("slave", set()), ("shared", {"shared"}), ("unbindable", {"unbindable"})],
)
def test_rootfs_propagation_on_root(engine: Engine, propagation: str | None, fields: set[str]) -> None:
    # The host's / is private here, so a slave of it shows no master:N (see the next test for what reaches it).
    edit = linux(rootfsPropagation=propagation) if propagation else None
    root = top_mount(parse_mountinfo(inside(engine, "cat /proc/self/mountinfo", edit)), "/")
    assert root.propagation == fields, root


@pytest.mark.parametrize(("propagation", "receives"), [(None, True), ("slave", True), ("private", False)])
def test_rootfs_propagation_from_host(
    engine: Engine, rootfs: Path, tmp_path: Path, propagation: str | None, receives: bool
) -> None:
    """A rootfs on a shared host mount: a slave rootfs sees what the host mounts under it later, a private one not."""
    shared_root = tmp_path / "shared-root"
    shared_root.mkdir()
    host_mount("--bind", str(rootfs), str(shared_root))
    try:
        host_mount("--make-shared", str(shared_root))
        edit = both(root_at(shared_root), linux(rootfsPropagation=propagation) if propagation else lambda c: None)
        cid = engine.new_id()
        engine("create", "--bundle", str(write_bundle(engine, "sleep 60", edit)), cid, check=True)
        pid = engine.state(cid)["pid"]
        host_mount("-t", "tmpfs", "-o", "size=1m", "probe", str(shared_root / "home"))
        seen = any(m.point == "/home" for m in parse_mountinfo(Path(f"/proc/{pid}/mountinfo").read_text()))
        assert seen == receives
        engine("delete", "--force", cid, check=True)
    finally:
        subprocess.run(["umount", "-R", "-l", str(shared_root)], check=False)


def test_root_not_readonly_unless_asked(engine: Engine, rootfs_copy: Path) -> None:
    out = inside(
        engine, "touch /written && echo ok; awk '$5 == \"/\"' /proc/self/mountinfo", root_at(rootfs_copy, False)
    )
    assert out.splitlines()[0] == "ok" and (rootfs_copy / "written").exists()
    assert "rw" in parse_mountinfo(out)[0].options


# == symlinks planted in the rootfs =========================================================================


@pytest.fixture
def planted(rootfs_copy: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A host directory with a file, and symlinks in the rootfs copy aimed at it with an absolute path (plus
    ../ to climb out of the rootfs): followed on the host, they would lead out of the rootfs."""
    hostdir = tmp_path / "HOSTDIR"
    hostdir.mkdir()
    (hostdir / "keep").write_text("host file\n")
    aim = "/../../../../../.." + str(hostdir)
    for name in ("evil", "maskme", "rome"):
        (rootfs_copy / name).symlink_to(aim)
    return rootfs_copy, hostdir


def test_symlink_mount_destination_stays_inside(engine: Engine, planted: tuple[Path, Path]) -> None:
    rootfs, hostdir = planted
    inner = rootfs / str(hostdir).lstrip("/")  # where /evil resolves with the rootfs as /
    inner.mkdir(parents=True)
    edit = both(root_at(rootfs, False), add_mounts({"destination": "/evil/x", "type": "tmpfs", "source": "evil"}))
    out = inside(engine, "echo > /evil/x/f && echo written; cat /proc/self/mountinfo", edit)
    assert out.splitlines()[0] == "written"
    evil = [m for m in parse_mountinfo(out) if m.source == "evil"]
    assert [m.point for m in evil] == [f"{hostdir}/x"]  # the container's own path, inside its root
    assert (inner / "x").is_dir()  # the mount point was made in the rootfs
    assert sorted(os.listdir(hostdir)) == ["keep"]  # the host directory is untouched


def test_symlink_mount_destination_dangling(engine: Engine, planted: tuple[Path, Path]) -> None:
    """/evil points at a path that does not exist in the rootfs. runc creates it inside the rootfs; engine refuses.
    Either way, nothing may happen in the host directory."""
    rootfs, hostdir = planted
    edit = both(root_at(rootfs, False), add_mounts({"destination": "/evil/x", "type": "tmpfs", "source": "evil"}))
    stderr = create_fails(engine, edit)
    assert "mounts: /evil/x" in stderr and "dangling symlink" in stderr, stderr
    assert sorted(os.listdir(hostdir)) == ["keep"]


def test_masked_and_readonly_symlinks_are_left_alone(engine: Engine, planted: tuple[Path, Path]) -> None:
    """maskedPaths/readonlyPaths naming a planted symlink: the engine does not follow it (O_NOFOLLOW), so neither
    the symlink's target in the container nor anything on the host is masked or made read-only. (runc follows the
    symlink inside the container and masks its target.)"""
    rootfs, hostdir = planted
    inner = rootfs / str(hostdir).lstrip("/")
    inner.mkdir(parents=True)
    (inner / "keep").write_text("inside file\n")
    edit = both(
        root_at(rootfs, False),
        linux(maskedPaths=["/maskme", "/proc/acpi"], readonlyPaths=["/rome", "/proc/sys"]),
    )
    out = inside(engine, "cat /maskme/keep; touch /rome/new && echo written; cat /proc/self/mountinfo", edit)
    lines = out.splitlines()
    assert lines[:2] == ["inside file", "written"]
    points = {m.point for m in parse_mountinfo(out)}
    assert {"/proc/acpi", "/proc/sys"} <= points  # the real entries were applied
    assert not {"/maskme", "/rome", str(hostdir)} & points
    assert sorted(os.listdir(hostdir)) == ["keep"] and (hostdir / "keep").read_text() == "host file\n"


# == /dev ====================================================================================================

STAT = "stat -c '%n|%F|%t:%T|%a|%u:%g'"


def stats(text: str) -> dict[str, list[str]]:
    return {f[0]: f[1:] for f in (line.split("|") for line in text.splitlines()) if len(f) == 5}


def test_dev(engine: Engine) -> None:
    devices = [
        {"path": "/dev/mychr", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 1000, "gid": 1001},
        {"path": "/dev/myblk", "type": "b", "major": 7, "minor": 0, "fileMode": 0o640, "gid": 6},
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o620},
        {"path": "/dev/sub/dir/tun", "type": "c", "major": 10, "minor": 200},  # no fileMode: 0666, like runc
    ]
    defaults = ["null", "zero", "full", "random", "urandom", "tty"]
    script = (
        f"{STAT} " + " ".join(f"/dev/{d}" for d in defaults) + " " + " ".join(d["path"] for d in devices) + "; "
        "for l in ptmx fd stdin stdout stderr; do echo link $l $(readlink /dev/$l); done; "
        "stat -L -c 'ptmx %d:%i' /dev/ptmx /dev/pts/ptmx"
    )
    out = inside(engine, script, linux(devices=devices))
    seen = stats(out)
    numbers = {"null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8", "urandom": "1:9", "tty": "5:0"}
    for name, number in numbers.items():
        assert seen[f"/dev/{name}"] == ["character special file", number, "666", "0:0"], name
    assert seen["/dev/mychr"] == ["character special file", "1:3", "600", "1000:1001"]
    assert seen["/dev/myblk"] == ["block special file", "7:0", "640", "0:6"]
    assert seen["/dev/myfifo"] == ["fifo", "0:0", "620", "0:0"]
    assert seen["/dev/sub/dir/tun"] == ["character special file", "a:c8", "666", "0:0"]  # stat prints hex
    links = {
        f[1]: f[2] if len(f) > 2 else ""
        for f in (line.split() for line in out.splitlines() if line.startswith("link "))
    }
    assert links == {
        "ptmx": "pts/ptmx",
        "fd": "/proc/self/fd",
        "stdin": "/proc/self/fd/0",
        "stdout": "/proc/self/fd/1",
        "stderr": "/proc/self/fd/2",
    }
    ptmx = [line.split()[1] for line in out.splitlines() if line.startswith("ptmx ")]
    assert len(ptmx) == 2 and ptmx[0] == ptmx[1]  # /dev/ptmx is the container's own devpts ptmx


@pytest.mark.parametrize(
    ("make", "device", "ok"),
    [
        (lambda p: p.write_text("not a device\n"), {"type": "c", "major": 1, "minor": 3}, False),
        (lambda p: p.mkdir(), {"type": "c", "major": 1, "minor": 3}, False),
        (lambda p: os.mknod(p, stat.S_IFCHR | 0o644, os.makedev(1, 5)), {"type": "c", "major": 1, "minor": 3}, False),
        (lambda p: os.mknod(p, stat.S_IFCHR | 0o644, os.makedev(1, 3)), {"type": "b", "major": 1, "minor": 3}, False),
        (lambda p: os.mknod(p, stat.S_IFCHR | 0o644, os.makedev(1, 3)), {"type": "c", "major": 1, "minor": 3}, True),
    ],
    ids=["regular-file", "directory", "other-numbers", "other-type", "same-device"],
)
def test_device_path_already_taken(
    engine: Engine, rootfs_copy: Path, make: Callable[[Path], None], device: dict[str, Any], ok: bool
) -> None:
    # config-linux.md Devices: "If a file already exists at path that does not match the requested device, the
    # runtime MUST generate an error." /mydev, not under /dev: the /dev tmpfs would hide it.
    make(rootfs_copy / "mydev")
    edit = both(root_at(rootfs_copy), linux(devices=[{"path": "/mydev", **device}]))
    if ok:
        assert inside(engine, f"{STAT} /mydev", edit).split("|")[1:3] == ["character special file", "1:3"]
    else:
        stderr = create_fails(engine, edit)
        assert "linux.devices[0]: /mydev exists and is not the requested device" in stderr, stderr


# == masked and read-only paths ==============================================================================


def test_masked_and_readonly_paths(engine: Engine) -> None:
    """Judged by what the kernel says of each path inside the container, not by reading it (/proc/kcore reads
    as nothing without CAP_SYS_RAWIO anyway): a masked file is a mount of the char device 1:3 (/dev/null) over
    the path; a masked directory is an empty read-only tmpfs mounted on it, its device that mount's."""
    files = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug") if os.path.exists(p)]
    dirs = [p for p in ("/proc/acpi", "/sys/firmware", "/proc/scsi") if os.path.isdir(p)]
    assert files and dirs
    script = (
        "".join(f"echo == {p}; stat -c '%F|%t:%T|%d' {p}; ls -A {p}; " for p in files + dirs)
        + "echo == write; { echo 1 > /proc/sys/kernel/printk_ratelimit && echo sys-written; } 2>&1; "
        "{ echo 0 > /proc/sys/vm/overcommit_memory && echo vm-written; } 2>&1; "
        "echo == mountinfo; cat /proc/self/mountinfo"
    )
    out = inside(engine, script)
    mountinfo = section(out, "mountinfo")
    mounts = parse_mountinfo(mountinfo)
    device_of = {line.split()[4]: line.split()[2] for line in mountinfo.splitlines() if " - " in line}  # last wins
    for path in files + dirs:
        kind, rdev, dev = section(out, path).splitlines()[0].split("|")
        number = f"{os.major(int(dev))}:{os.minor(int(dev))}"
        assert path in device_of, f"{path}: no mount on it: {mountinfo}"
        assert device_of[path] == number, f"{path}: device {number} is not that of the mount on it: {device_of[path]}"
        if path in files:
            assert (kind, rdev) == ("character special file", "1:3"), f"{path}: {kind} {rdev}, not /dev/null"
        else:
            assert kind == "directory" and section(out, path).splitlines()[1:] == [], section(out, path)
            assert top_mount(mounts, path).fstype == "tmpfs" and "ro" in top_mount(mounts, path).options
    assert "written" not in section(out, "write")
    assert section(out, "write").count("Read-only file system") == 2
    for path in ("/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq"):
        if os.path.exists(path):
            assert "ro" in top_mount(mounts, path).options, path


# == process =================================================================================================

SECCOMP_NO_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
}


def test_process_attributes(engine: Engine) -> None:
    capabilities = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_NET_RAW"],
        "inheritable": ["CAP_KILL", "CAP_SETUID", "CAP_NET_RAW"],
        "permitted": ["CAP_KILL", "CAP_NET_RAW"],
        "effective": ["CAP_KILL", "CAP_NET_RAW"],
        "ambient": ["CAP_KILL", "CAP_NET_RAW"],
    }
    edit = both(
        process(
            user={"uid": 1000, "gid": 1000, "additionalGids": [5, 2000], "umask": 0o027},
            capabilities=capabilities,
            noNewPrivileges=False,
            oomScoreAdj=123,
            rlimits=[
                {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 2048},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
            ],
            cwd="/usr/bin",
            env=["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY="],
        ),
        with_(hostname="h1", domainname="d1.example"),
        linux(sysctl={"net.ipv4.ip_forward": "1", "kernel.shmmax": "12345678"}, seccomp=SECCOMP_NO_MKDIR),
    )
    script = r"""
echo == status; cat /proc/self/status
echo == values
echo umask=$(umask) oom=$(cat /proc/self/oom_score_adj) nofile=$(ulimit -Sn):$(ulimit -Hn) core=$(ulimit -Hc)
echo host=$(hostname) domain=$(cat /proc/sys/kernel/domainname)
echo fwd=$(cat /proc/sys/net/ipv4/ip_forward) shmmax=$(cat /proc/sys/kernel/shmmax)
echo cwd=$(pwd) HOME=$HOME
echo == env; env
echo == id; id
echo == mkdir; mkdir /tmp/blocked 2>&1
true
"""
    out = inside(engine, script, edit)
    st = status(section(out, "status"))
    # Non-root: execve leaves permitted = effective = ambient (capabilities(7)), so all five sets are exact.
    assert {k: int(st[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")} == {
        "CapInh": caps(*capabilities["inheritable"]),
        "CapPrm": caps(*capabilities["permitted"]),
        "CapEff": caps(*capabilities["effective"]),
        "CapBnd": caps(*capabilities["bounding"]),
        "CapAmb": caps(*capabilities["ambient"]),
    }
    assert st["NoNewPrivs"] == "0" and st["Seccomp"] == "2"
    assert st["Uid"].split() == ["1000"] * 4 and st["Gid"].split() == ["1000"] * 4
    assert st["Groups"].split() == ["5", "2000"]
    values = dict(item.split("=", 1) for item in section(out, "values").split())
    assert values == {
        "umask": "0027",
        "oom": "123",
        "nofile": "512:2048",
        "core": "0",
        "host": "h1",
        "domain": "d1.example",
        "fwd": "1",
        "shmmax": "12345678",
        "cwd": "/usr/bin",
        "HOME": "/",  # uid 1000 has no /etc/passwd entry: "/", as runc
    }
    assert {"PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY=", "HOME=/"} <= set(section(out, "env").splitlines())
    assert section(out, "id").strip() == "uid=1000 gid=1000 groups=5(tty),2000"
    assert "Operation not permitted" in section(out, "mkdir")  # seccomp's errnoRet 1 = EPERM


def test_home_default(engine: Engine) -> None:
    assert inside(engine, "echo $HOME").strip() == "/root"  # root's home from the container's /etc/passwd
    explicit = inside(engine, "echo $HOME", process(env=["PATH=/bin", "HOME=/explicit"]), name="explicit")
    assert explicit.strip() == "/explicit"


def test_rlimit_above_the_hard_ceiling_fails_clearly(engine: Engine) -> None:
    # Raising a hard limit needs CAP_SYS_RESOURCE. This machine's root lacks it (hard nofile max 20000); where
    # root has it, engine runs here without it (dropped in the child before exec), which is the case judged.
    import resource

    ceiling = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    too_high = ceiling + 10000
    edit = process(rlimits=[{"type": "RLIMIT_NOFILE", "soft": too_high, "hard": too_high}])
    cid = engine.new_id()
    bundle = write_bundle(engine, "true", edit)
    result = engine("create", "--bundle", str(bundle), cid, preexec_fn=lambda: drop_capability(CAP_SYS_RESOURCE))
    assert result.returncode != 0, f"create succeeded: {result.stdout}"
    assert "process.rlimits: RLIMIT_NOFILE" in result.stderr and "CAP_SYS_RESOURCE" in result.stderr, result.stderr


# == namespaces ==============================================================================================

MAPPING = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def userns(config: dict[str, Any]) -> None:
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = MAPPING
    config["linux"]["gidMappings"] = MAPPING


@pytest.fixture
def mapped_rootfs(rootfs: Path) -> Iterator[Path]:
    """A rootfs copy owned by host 100000 (the container's root), where that user can reach it: the rootfs is
    bind-mounted inside the user namespace, and pytest's tmp_path lies below a 0700 directory."""
    base = Path(tempfile.mkdtemp(prefix="engine-userns-"))
    base.chmod(0o755)
    copy = base / "rootfs"
    try:
        subprocess.run(["cp", "-a", str(rootfs), str(copy)], check=True)
        subprocess.run(["chown", "-R", "-h", "100000:100000", str(copy)], check=True)
        yield copy
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_user_namespace(engine: Engine, mapped_rootfs: Path) -> None:
    rootfs_copy = mapped_rootfs
    script = (
        "echo == maps; cat /proc/self/uid_map /proc/self/gid_map; echo == id; id -u; id -g; "
        "echo == owners; stat -c '%u:%g' /bin/busybox /etc/passwd; echo == write; touch /tmp/made && echo ok"
    )
    out = inside(engine, script, both(userns, root_at(rootfs_copy, False)))
    assert section(out, "maps").split() == ["0", "100000", "65536"] * 2
    assert section(out, "id").split() == ["0", "0"]
    assert section(out, "owners").split() == ["0:0", "0:0"]  # host 100000 is the container's 0
    made = (rootfs_copy / "tmp" / "made").stat()
    assert (made.st_uid, made.st_gid) == (100000, 100000)
    assert (rootfs_copy / "bin" / "busybox").stat().st_uid == 100000  # ownership left as it was


def test_user_namespace_bind_source_in_a_private_directory(engine: Engine, tmp_path: Path) -> None:
    private = tmp_path / "private"
    (private / "data").mkdir(parents=True)
    private.chmod(0o700)
    tmp_path.chmod(0o755)
    edit = both(
        userns,
        add_mounts({"destination": "/home", "type": "bind", "source": str(private / "data"), "options": ["rbind"]}),
    )
    assert " /home " in inside(engine, "cat /proc/self/mountinfo", edit)


def test_join_network_namespace_by_path(engine: Engine) -> None:
    if not shutil.which("ip"):
        pytest.skip("ip (iproute2) is not installed on this host")
    name = f"engine-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        path = f"/run/netns/{name}"
        # A mark only this network namespace has.
        subprocess.run(["ip", "netns", "exec", name, "sysctl", "-q", "net.ipv4.ip_default_ttl=77"], check=True)

        def join(config: dict[str, Any]) -> None:
            config["linux"]["namespaces"] = [
                {"type": "network", "path": path} if ns["type"] == "network" else ns
                for ns in config["linux"]["namespaces"]
            ]

        out = inside(engine, "readlink /proc/self/ns/net; cat /proc/sys/net/ipv4/ip_default_ttl", join)
        assert out.split() == [f"net:[{os.stat(path).st_ino}]", "77"]
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_without_a_pid_namespace(engine: Engine) -> None:
    def no_pidns(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"]

    out = inside(engine, "echo $$; readlink /proc/self/ns/pid; ls /proc | grep -c '^[0-9]'", no_pidns)
    pid, ns, count = out.split()
    assert int(pid) != 1
    assert ns == os.readlink("/proc/self/ns/pid")  # the runtime's pid namespace
    assert int(count) > 3  # the host's processes are visible


def test_time_namespace_offsets(engine: Engine) -> None:
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("this kernel has no time namespaces (no /proc/self/ns/time)")
    offset = 10 * 86400

    def timens(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"].append({"type": "time"})
        config["linux"]["timeOffsets"] = {"boottime": {"secs": offset}, "monotonic": {"secs": 3600, "nanosecs": 5}}

    host = float(Path("/proc/uptime").read_text().split()[0])
    out = inside(engine, "cat /proc/uptime; cat /proc/self/timens_offsets", timens)
    assert host + offset <= float(out.split()[0]) < host + offset + 60
    assert "monotonic 3600 5" in " ".join(out.split()) and f"boottime {offset} 0" in " ".join(out.split())


def test_cgroup_namespace(engine: Engine) -> None:
    out = inside(engine, "cat /proc/self/cgroup")  # the default config has a cgroup namespace
    assert out.splitlines() and all(line.endswith(":/") for line in out.splitlines()), out


# == --no-pivot ==============================================================================================


def test_no_pivot(engine: Engine, rootfs: Path) -> None:
    out = inside(engine, "cat /proc/self/mountinfo; echo == ls; ls /", None, "--no-pivot")
    mounts = parse_mountinfo(out)
    assert mounts[0].point == "/" and mounts[0].root == str(rootfs) and "ro" in mounts[0].options
    assert section(out, "ls").split() == sorted(os.listdir(rootfs))
    assert {"/proc", "/dev", "/sys"} <= {m.point for m in mounts}


def test_missing_cwd_is_created_under_a_readonly_root(engine: Engine, rootfs_copy: Path) -> None:
    out = inside(engine, "pwd", both(root_at(rootfs_copy, True), process(cwd="/new/work")))
    assert out.strip() == "/new/work"
