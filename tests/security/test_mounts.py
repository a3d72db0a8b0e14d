"""Mounts a hostile config or image can bend: flags lost in a user namespace, a destination swapped during create
(CVE-2021-30465), mounts over /proc (CVE-2019-16884, CVE-2019-19921, CVE-2023-27561) and procfs on a symlink
(CVE-2023-28642)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.config_mounts import parse_mountinfo
from tests.security.conftest import Runtime, bind, one_line_error, userns


def mount_of(output: str, point: str) -> set[str]:
    return set([m for m in parse_mountinfo(output) if m.point == point][-1].options)  # the top one


def test_bind_options_apply_in_a_user_namespace(runtime: Runtime, tmp_path: Path) -> None:
    """["rbind", "ro", "nosuid"] (and the recursive rro/rnodev) in a container with a user namespace: engine used
    to attach the detached bind without any of its flags, leaving it writable. Every flag must hold."""
    source = tmp_path / "data"
    (source / "sub").mkdir(parents=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / "f").touch()

    def edit(config: dict) -> None:
        userns(config)
        config["mounts"] += [
            bind(source, "/data", "ro", "nosuid"),
            bind(other, "/other", "rro", "rnodev", "noexec"),
        ]

    script = "cat /proc/self/mountinfo; touch /data/x 2>&1; touch /other/y 2>&1; true"
    result = runtime.run(runtime.config(["sh", "-c", script], edit=edit))
    assert result.returncode == 0, result.stderr
    assert {"ro", "nosuid"} <= mount_of(result.stdout, "/data"), result.stdout
    assert {"ro", "nodev", "noexec"} <= mount_of(result.stdout, "/other"), result.stdout
    assert not (source / "x").exists() and not (other / "y").exists()


def test_cve_2021_30465_flags_apply_to_the_mount_not_to_a_second_lookup(runtime: Runtime, tmp_path: Path) -> None:
    """A bind's flags were applied by a remount that looked the destination up again, after the bind: whatever
    the path means by then gets them. In CVE-2021-30465 a symlink swapped in a shared volume changed its meaning
    between the two lookups; here the bind itself does, deterministically: the destination /vol/y/.. is /vol
    before the bind and, through the bound source's own y -> /vol2/z, /vol2 after it. The read-only source must
    be read-only, and nothing else may be touched."""
    rootfs = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", str(runtime.rootfs), str(rootfs)], check=True)
    (rootfs / "vol" / "y").mkdir(parents=True)
    (rootfs / "vol2").mkdir()
    shared, read_only = tmp_path / "shared", tmp_path / "read-only-source"
    (shared / "z").mkdir(parents=True)
    read_only.mkdir()
    (read_only / "y").symlink_to("/vol2/z")

    def edit(config: dict) -> None:
        config["mounts"] += [bind(shared, "/vol2"), bind(read_only, "/vol/y/..", "ro")]

    script = "cat /proc/self/mountinfo; touch /vol/written 2>&1; touch /vol2/written 2>&1; true"
    result = runtime.run(runtime.config(["sh", "-c", script], rootfs=rootfs, edit=edit))
    assert result.returncode == 0, result.stderr
    assert not (read_only / "written").exists(), "the read-only source was written to"
    assert (shared / "written").exists(), "the other bind lost its writability (the remount landed there)"
    assert "ro" in mount_of(result.stdout, "/vol") and "rw" in mount_of(result.stdout, "/vol2"), result.stdout


@pytest.mark.parametrize("how", ["direct", "image symlink"])
def test_cve_2019_16884_no_mount_over_proc_sys(
    runtime: Runtime, tmp_path: Path, fresh_rootfs: Callable[[], Path], how: str
) -> None:
    """A bind over /proc/sys (a plain directory whose files take the sysctl writes, the AppArmor/LSM writes of
    the same kind, CVE-2019-16884) is refused, also when an image symlink steers the destination there."""
    fake = tmp_path / "fake-sys"
    (fake / "kernel").mkdir(parents=True)
    rootfs = fresh_rootfs()
    os.symlink("/proc", rootfs / "pp")
    destination = "/proc/sys" if how == "direct" else "/pp/sys"

    def edit(config: dict) -> None:
        config["mounts"].append(bind(fake, destination))

    _, result = runtime.create(runtime.config(["true"], rootfs=rootfs, edit=edit))
    assert result.returncode != 0, "a mount over /proc/sys was accepted"
    if not runtime.is_runc:
        error = one_line_error(result)
        assert destination in error and "/proc" in error, error


def test_cve_2019_19921_only_procfs_on_proc(runtime: Runtime, tmp_path: Path, fresh_rootfs: Callable[[], Path]) -> None:
    """A tmpfs (or any bind of a non-procfs directory) on /proc itself is refused: only a procfs goes there."""
    fake = tmp_path / "fake-proc"
    fake.mkdir()

    def edit(config: dict) -> None:
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/proc"]
        config["mounts"].append(bind(fake, "/proc"))

    _, result = runtime.create(runtime.config(["true"], rootfs=fresh_rootfs(), edit=edit))
    assert result.returncode != 0, "a non-procfs bind on /proc was accepted"
    if not runtime.is_runc:
        assert "only a procfs may be mounted on /proc" in one_line_error(result)


def test_cve_2023_28642_procfs_never_on_a_symlink(runtime: Runtime, fresh_rootfs: Callable[[], Path]) -> None:
    """An image whose /proc is a symlink would get procfs mounted where the symlink points (out of reach of the
    LSM rules that name /proc): refused."""
    rootfs = fresh_rootfs()
    (rootfs / "proc").rmdir()
    (rootfs / "elsewhere").mkdir()
    os.symlink("/elsewhere", rootfs / "proc")
    _, result = runtime.create(runtime.config(["true"], rootfs=rootfs))
    assert result.returncode != 0, "procfs was mounted through a symlink"
    if not runtime.is_runc:
        assert "ordinary directory" in one_line_error(result)
