"""The same bundles under runc (Debian's 1.1.5, the reference) and under engine: what the container sees must be
the same, and where it legitimately differs the difference is asserted explicitly, with the reason.

Each scenario runs `runc --root <tmp> run --bundle B id` and `engine --root <tmp> run --bundle B id` (no terminal;
the container's stdout is the runtime's) on configs declaring ociVersion 1.0.2-dev, which runc 1.1.5 accepts.
What is compared is normalized: mount ids, device numbers of anonymous filesystems, peer group numbers and the
order of the masked/read-only mounts are not meaningful across two containers.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.config_mounts import parse_mountinfo, section
from engine.spec.default import default_config
from tests.integration.conftest import Engine

RUNC = "/usr/sbin/runc"
pytestmark = pytest.mark.skipif(not os.access(RUNC, os.X_OK), reason=f"{RUNC} (the reference runtime) missing")

Edit = Callable[[dict[str, Any]], None]

# One script shows everything compared; sections are split by `== name` lines.
SEE_ALL = r"""
echo == mountinfo; cat /proc/self/mountinfo
echo == status; grep -E '^(Cap|NoNewPrivs|Seccomp:|Uid|Gid|Groups|Umask)' /proc/self/status
echo == id; id
echo == hostname; hostname
echo == domainname; cat /proc/sys/kernel/domainname
echo == dev; find /dev -xdev | sort | while read f; do stat -c '%n %F %t:%T %a %u:%g' "$f"; done
echo == devlinks; for f in /dev/*; do [ -L "$f" ] && echo "$f -> $(readlink $f)"; done
echo == limits; cat /proc/self/limits
echo == env; env | sort
echo == cwd; pwd
echo == oom; cat /proc/self/oom_score_adj
echo == maps; cat /proc/self/uid_map /proc/self/gid_map
echo == end
"""


class Pair:
    """Runs one bundle config under runc and under engine; returns what each container printed."""

    def __init__(self, engine: Engine, tmp_path: Path) -> None:
        self.engine = engine
        self.tmp = tmp_path
        self.runc_root = tmp_path / "runc-root"
        self.count = 0

    def bundle(self, config: dict[str, Any]) -> Path:
        self.count += 1
        bundle = self.tmp / f"bundle-{self.count}"
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    def runc(self, config: dict[str, Any], *flags: str) -> subprocess.CompletedProcess[str]:
        bundle = self.bundle(config)
        cid = f"sbs-{os.getpid()}-{self.count}"
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            code = subprocess.run(
                [RUNC, "--root", str(self.runc_root), "run", *flags, "--bundle", str(bundle), cid],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=60,
            ).returncode
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess([], code, out.read(), err.read())

    def run(
        self, script: str, edit: Edit | None = None, *flags: str, rootfs: Callable[[], Path] | None = None
    ) -> tuple[str, str]:
        """(runc's output, engine's output). `rootfs` makes a fresh rootfs per runtime (mount points created by one
        must not change what the other sees)."""
        outputs = []
        for which in ("runc", "engine"):
            config = default_config(["sh", "-c", script], terminal=False)
            config["ociVersion"] = "1.0.2-dev"
            config["root"] = {"path": str(rootfs() if rootfs else self.engine.rootfs), "readonly": True}
            if edit is not None:
                edit(config)
            if which == "runc":
                result = self.runc(config, *flags)
            else:
                result = self.engine("run", *flags, "--bundle", str(self.bundle(config)), self.engine.new_id())
            assert result.returncode == 0, f"{which} run failed ({result.returncode}): {result.stderr}{result.stdout}"
            outputs.append(result.stdout)
        return outputs[0], outputs[1]

    def cleanup(self) -> list[str]:
        if not self.runc_root.exists():
            return []
        listed = subprocess.run([RUNC, "--root", str(self.runc_root), "list", "-q"], capture_output=True, text=True)
        left = listed.stdout.split()
        for cid in left:
            subprocess.run([RUNC, "--root", str(self.runc_root), "delete", "--force", cid], capture_output=True)
        return left


@pytest.fixture
def pair(engine: Engine, tmp_path: Path) -> Iterator[Pair]:
    p = Pair(engine, tmp_path)
    yield p
    assert p.cleanup() == [], "runc left containers behind"


# -- normalization -------------------------------------------------------------------------------------------


def mounts(text: str) -> set[tuple[str, ...]]:
    """Mount point, type, root, per-mount options, propagation kinds, superblock options: what a container sees
    of its mounts, without ids, device numbers, sources or the order of the masked/read-only mounts."""
    seen = set()
    for m in parse_mountinfo(section(text, "mountinfo")):
        seen.add(
            (
                m.point,
                m.fstype,
                m.root,
                ",".join(sorted(m.options)),
                ",".join(sorted(m.propagation)),
                ",".join(sorted(m.super_options)),
            )
        )
    return seen


def lines(text: str, name: str) -> list[str]:
    return section(text, name).splitlines()


def status(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines(text, "status"))}


def at(points: set[tuple[str, ...]], point: str) -> set[tuple[str, ...]]:
    return {m for m in points if m[0] == point}


# The mounts both runtimes make identically are compared as they are; these are where they differ, and why.


def cgroup_and_mask_differences(runc: set[tuple[str, ...]], engine: set[tuple[str, ...]]) -> None:
    """Assert that runc and engine differ in exactly these mounts of the default config, and how."""
    only_runc, only_engine = runc - engine, engine - runc
    explained = {"/proc/acpi", "/sys/firmware"}
    if os.path.isdir("/sys/fs/cgroup/unified"):  # a hybrid host, like this one: 1 and 2 apply
        _hybrid_cgroup_differences(runc, only_runc, only_engine)
        explained |= {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}
    # 3. maskedPaths directories get an empty read-only tmpfs in both; engine passes size=0k,mode=755 as its data
    #    (nothing can be written anyway), runc no data.
    for point in ("/proc/acpi", "/sys/firmware"):
        (r,), (e,) = at(only_runc, point), at(only_engine, point)
        extra = set(e[5].split(",")) - set(r[5].split(","))
        assert r[:5] == e[:5] and set(r[5].split(",")) <= set(e[5].split(",")) and extra == {"mode=755", "size=0k"}
    rest = {m[0] for m in only_runc | only_engine} - explained
    assert not rest, f"unexplained mount differences at {sorted(rest)}:\nrunc {only_runc}\nengine {only_engine}"


def _hybrid_cgroup_differences(runc: set[tuple[str, ...]], only_runc: set[Any], only_engine: set[Any]) -> None:
    # 1. /sys/fs/cgroup (the tmpfs holding the v1 hierarchies): runc 1.1.5 leaves it rw although the config asks
    #    for "ro"; engine remounts it read-only. The hierarchies themselves are ro in both.
    assert [m[3] for m in at(only_runc, "/sys/fs/cgroup")] == ["nodev,noexec,nosuid,relatime,rw"]
    assert [m[3] for m in at(only_engine, "/sys/fs/cgroup")] == ["nodev,noexec,nosuid,relatime,ro"]
    # 2. On this hybrid host engine also mounts the cgroup2 hierarchy ("unified"); runc 1.1.5 mounts only the v1 ones.
    assert {m[:2] for m in at(only_engine, "/sys/fs/cgroup/unified")} == {("/sys/fs/cgroup/unified", "cgroup2")}
    assert not at(runc, "/sys/fs/cgroup/unified")


# -- scenarios -----------------------------------------------------------------------------------------------


def test_default_config(pair: Pair) -> None:
    runc, engine = pair.run(SEE_ALL)
    cgroup_and_mask_differences(mounts(runc), mounts(engine))
    for name in ("status", "id", "hostname", "dev", "devlinks", "limits", "env", "cwd", "oom", "maps"):
        assert lines(engine, name) == lines(runc, name), name
    # Both leave the domainname alone: the host's (none).
    assert lines(engine, "domainname") == lines(runc, "domainname")


def test_process_attributes(pair: Pair) -> None:
    def edit(config: dict[str, Any]) -> None:
        config["process"].update(
            user={"uid": 1000, "gid": 1000, "additionalGids": [5, 2000], "umask": 0o027},
            capabilities={
                "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_NET_RAW"],
                "inheritable": ["CAP_KILL", "CAP_SETUID", "CAP_NET_RAW"],
                "permitted": ["CAP_KILL", "CAP_NET_RAW"],
                "effective": ["CAP_KILL", "CAP_NET_RAW"],
                "ambient": ["CAP_KILL", "CAP_NET_RAW"],
            },
            noNewPrivileges=False,
            oomScoreAdj=321,
            rlimits=[
                {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 2048},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                {"type": "RLIMIT_NPROC", "soft": 500, "hard": 600},
            ],
            cwd="/usr/bin",
            env=["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY="],
        )
        config["hostname"] = "side-by-side"
        config["domainname"] = "sbs.example"
        config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "12345678"}
        config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
        }

    script = SEE_ALL + "echo == sysctl; cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax; echo == seccomp; "
    script += "mkdir /tmp/x 2>&1; echo == last"
    runc, engine = pair.run(script, edit)
    for name in ("status", "id", "hostname", "limits", "env", "cwd", "oom", "sysctl", "seccomp"):
        assert lines(engine, name) == lines(runc, name), name
    assert status(engine)["CapAmb"] == f"{(1 << 5) | (1 << 13):016x}"  # the ambient set really is there
    assert "Operation not permitted" in section(engine, "seccomp")
    # runc 1.1.5 does not set domainname at all (conformance/deviations.py: domainname_inside); engine does.
    assert lines(runc, "domainname") == ["(none)"] and lines(engine, "domainname") == ["sbs.example"]


def test_devices(pair: Pair) -> None:
    devices = [
        {"path": "/dev/mychr", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 1000, "gid": 1001},
        {"path": "/dev/myblk", "type": "b", "major": 7, "minor": 0, "fileMode": 0o640, "gid": 6},
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o620},
        {"path": "/dev/sub/dir/tun", "type": "c", "major": 10, "minor": 200},
    ]

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["devices"] = devices

    runc, engine = pair.run(SEE_ALL, edit)
    assert lines(engine, "dev") == lines(runc, "dev")
    assert "/dev/sub/dir/tun character special file a:c8 666 0:0" in lines(engine, "dev")
    assert lines(engine, "devlinks") == lines(runc, "devlinks")


def test_extra_mounts(pair: Pair, tmp_path: Path, fresh_rootfs: Callable[[], Path]) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (tmp_path / "afile").write_text("content\n")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "subsrc", str(source / "sub")], check=True)
    try:

        def edit(config: dict[str, Any]) -> None:
            config["mounts"] += [
                {
                    "destination": "/mnt/file",
                    "type": "bind",
                    "source": str(tmp_path / "afile"),
                    "options": ["bind", "ro"],
                },
                {
                    "destination": "/mnt/dir",
                    "type": "bind",
                    "source": str(source),
                    "options": ["rbind", "nosuid", "noexec"],
                },
                {"destination": "/mnt/rro", "type": "bind", "source": str(source), "options": ["rbind", "rro"]},
                {"destination": "/mnt/tmpfs", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=710"]},
                {"destination": "/mnt/shared", "type": "tmpfs", "source": "tmpfs", "options": ["shared"]},
                {"destination": "/mnt/unbindable", "type": "tmpfs", "source": "tmpfs", "options": ["unbindable"]},
            ]

        script = SEE_ALL + "echo == kinds; stat -c '%n %F %a' /mnt/file /mnt/dir /mnt/tmpfs; echo == tail"
        runc, engine = pair.run(script, edit, rootfs=fresh_rootfs)
    finally:
        subprocess.run(["umount", "-l", str(source / "sub")], check=False)
    runc_mounts, engine_mounts = mounts(runc), mounts(engine)
    # The root's path differs (one fresh rootfs each): compare the rest of "/" and every extra mount exactly.
    extra = {m for m in runc_mounts | engine_mounts if m[0].startswith("/mnt")}
    assert {m for m in extra if m in runc_mounts} == {m for m in extra if m in engine_mounts}
    assert len(at(engine_mounts, "/mnt/rro/sub")) == 1 and "ro" in next(iter(at(engine_mounts, "/mnt/rro/sub")))[3]
    assert lines(engine, "kinds") == lines(runc, "kinds")
    (r_root,), (e_root,) = at(runc_mounts, "/"), at(engine_mounts, "/")
    assert r_root[1] == e_root[1] and r_root[3:] == e_root[3:]
    cgroup_and_mask_differences({m for m in runc_mounts if m[0] != "/"}, {m for m in engine_mounts if m[0] != "/"})


def test_user_namespace(pair: Pair, rootfs: Path) -> None:
    mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = mapping
        config["linux"]["gidMappings"] = mapping

    runc, engine = pair.run(SEE_ALL + "echo == owners; stat -c '%u:%g %n' / /bin/busybox /proc/1; echo == x", edit)
    cgroup_and_mask_differences(mounts(runc), mounts(engine))
    for name in ("maps", "status", "id", "owners", "devlinks", "limits", "env"):
        assert lines(engine, name) == lines(runc, name), name
    # /dev/mqueue's root belongs to whoever created the ipc namespace (mq_init_ns at unshare time). runc's nsexec
    # unshares it after setresuid(0) but before any setresgid, with the host's gid 0 still its fsgid, which the
    # container sees as the overflow gid 65534; engine becomes 0:0 in the user namespace first. All else equal.
    runc_dev, engine_dev = lines(runc, "dev"), lines(engine, "dev")
    assert [d for d in runc_dev if d not in engine_dev] == ["/dev/mqueue directory 0:0 1777 0:65534"]
    assert [d for d in engine_dev if d not in runc_dev] == ["/dev/mqueue directory 0:0 1777 0:0"]
    assert [" ".join(line.split()) for line in lines(engine, "maps")] == ["0 100000 65536"] * 2


def test_no_pivot(pair: Pair) -> None:
    runc, engine = pair.run(SEE_ALL, None, "--no-pivot")
    cgroup_and_mask_differences(mounts(runc), mounts(engine))
    for name in ("status", "id", "hostname", "dev", "devlinks", "env", "cwd"):
        assert lines(engine, name) == lines(runc, name), name


@pytest.mark.parametrize("propagation", ["private", "slave", "shared"])
def test_rootfs_propagation(pair: Pair, propagation: str) -> None:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["rootfsPropagation"] = propagation

    runc, engine = pair.run("echo == mountinfo; cat /proc/self/mountinfo; echo == end", edit)
    (r_root,), (e_root,) = at(mounts(runc), "/"), at(mounts(engine), "/")
    if propagation == "shared":
        # config-linux.md: "shared: the rootfs mount belongs to a new peer group." engine's / is shared:N; runc 1.1.5
        # applies the propagation before pivot_root, to the runtime's /, and its rootfs ends up private
        # (conformance/deviations.py: rootfs_propagation_shared).
        assert (r_root[4], e_root[4]) == ("", "shared")
    else:
        assert r_root == e_root
