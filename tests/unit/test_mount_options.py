"""engine.setup.mount_options against config.md's "Linux mount options" table, plus mount_setattr for real."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.linux import mount_attr as ma
from engine.linux import syscalls as sc
from engine.setup import mount_options as mo
from engine.setup.mount_options import parse_mount_options
from tests.forked import run_in_child

ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

ALL_MS = 0
for _name in dir(sc):
    if _name.startswith("MS_"):
        ALL_MS |= getattr(sc, _name)


def spec_table_options(spec_dir: Path) -> list[str]:
    """The option names in config.md's "Linux mount options" table."""
    text = (spec_dir / "config.md").read_text()
    section = text.split('name="configLinuxMountOptions"', 1)[1].split("[^1]:", 1)[0]
    return [m.strip() for m in re.findall(r"^ `([^`]+)`\s*\|", section, re.M)]


def test_every_option_in_the_spec_table_is_known(spec_dir: Path) -> None:
    options = spec_table_options(spec_dir)
    assert len(options) >= 60, options
    assert set(options) <= set(mo.KNOWN_OPTIONS), set(options) - set(mo.KNOWN_OPTIONS)
    # ...and none of them leaks into the data string.
    for option in options:
        assert parse_mount_options([option]).data == "", option


@pytest.mark.parametrize(
    ("option", "flag"),
    [
        ("ro", sc.MS_RDONLY),
        ("nosuid", sc.MS_NOSUID),
        ("nodev", sc.MS_NODEV),
        ("noexec", sc.MS_NOEXEC),
        ("sync", sc.MS_SYNCHRONOUS),
        ("remount", sc.MS_REMOUNT),
        ("mand", sc.MS_MANDLOCK),
        ("dirsync", sc.MS_DIRSYNC),
        ("nosymfollow", sc.MS_NOSYMFOLLOW),
        ("noatime", sc.MS_NOATIME),
        ("nodiratime", sc.MS_NODIRATIME),
        ("bind", sc.MS_BIND),
        ("rbind", sc.MS_BIND | sc.MS_REC),
        ("silent", sc.MS_SILENT),
        ("relatime", sc.MS_RELATIME),
        ("iversion", sc.MS_I_VERSION),
        ("strictatime", sc.MS_STRICTATIME),
        ("lazytime", sc.MS_LAZYTIME),
    ],
)
def test_flag_options(option: str, flag: int) -> None:
    plan = parse_mount_options([option])
    assert plan.flags == flag and plan.cleared_flags == 0 and plan.data == ""


@pytest.mark.parametrize(
    ("option", "flag"),
    [
        ("rw", sc.MS_RDONLY),
        ("suid", sc.MS_NOSUID),
        ("dev", sc.MS_NODEV),
        ("exec", sc.MS_NOEXEC),
        ("async", sc.MS_SYNCHRONOUS),
        ("atime", sc.MS_NOATIME),
        ("diratime", sc.MS_NODIRATIME),
        ("loud", sc.MS_SILENT),
        ("nomand", sc.MS_MANDLOCK),
        ("norelatime", sc.MS_RELATIME),
        ("nostrictatime", sc.MS_STRICTATIME),
        ("noiversion", sc.MS_I_VERSION),
        ("nolazytime", sc.MS_LAZYTIME),
        ("symfollow", sc.MS_NOSYMFOLLOW),
    ],
)
def test_clearing_options(option: str, flag: int) -> None:
    plan = parse_mount_options([option])
    assert plan.flags == 0 and plan.cleared_flags == flag


def test_later_option_wins() -> None:
    assert parse_mount_options(["ro", "rw"]).flags == 0
    assert parse_mount_options(["ro", "rw"]).cleared_flags == sc.MS_RDONLY
    assert parse_mount_options(["rw", "ro"]).flags == sc.MS_RDONLY
    assert parse_mount_options(["rw", "ro"]).cleared_flags == 0


def test_a_typical_tmpfs_and_bind_mount() -> None:
    plan = parse_mount_options(["nosuid", "strictatime", "mode=755", "size=65536k"])
    assert plan.flags == sc.MS_NOSUID | sc.MS_STRICTATIME
    assert plan.data == "mode=755,size=65536k"
    assert not plan.bind

    plan = parse_mount_options(["rbind", "ro", "rprivate"])
    assert plan.bind and plan.recursive_bind
    assert plan.flags == sc.MS_BIND | sc.MS_REC | sc.MS_RDONLY
    assert plan.propagations == (sc.MS_PRIVATE | sc.MS_REC,)
    assert plan.propagation == sc.MS_PRIVATE | sc.MS_REC


def test_propagation_options_keep_their_order() -> None:
    plan = parse_mount_options(["rprivate", "shared", "runbindable"])
    assert plan.propagations == (sc.MS_PRIVATE | sc.MS_REC, sc.MS_SHARED, sc.MS_UNBINDABLE | sc.MS_REC)
    assert plan.propagation == sc.MS_UNBINDABLE | sc.MS_REC
    assert plan.flags == 0
    for name, flag in [
        ("slave", sc.MS_SLAVE),
        ("rslave", sc.MS_SLAVE | sc.MS_REC),
        ("rshared", sc.MS_SHARED | sc.MS_REC),
    ]:
        assert parse_mount_options([name]).propagations == (flag,)


@pytest.mark.parametrize(
    ("option", "attr_set", "attr_clr"),
    [
        ("rro", ma.MOUNT_ATTR_RDONLY, 0),
        ("rrw", 0, ma.MOUNT_ATTR_RDONLY),
        ("rnosuid", ma.MOUNT_ATTR_NOSUID, 0),
        ("rsuid", 0, ma.MOUNT_ATTR_NOSUID),
        ("rnodev", ma.MOUNT_ATTR_NODEV, 0),
        ("rdev", 0, ma.MOUNT_ATTR_NODEV),
        ("rnoexec", ma.MOUNT_ATTR_NOEXEC, 0),
        ("rexec", 0, ma.MOUNT_ATTR_NOEXEC),
        ("rnodiratime", ma.MOUNT_ATTR_NODIRATIME, 0),
        ("rdiratime", 0, ma.MOUNT_ATTR_NODIRATIME),
        ("rnosymfollow", ma.MOUNT_ATTR_NOSYMFOLLOW, 0),
        ("rsymfollow", 0, ma.MOUNT_ATTR_NOSYMFOLLOW),
        ("rnoatime", ma.MOUNT_ATTR_NOATIME, ma.MOUNT_ATTR__ATIME),
        ("rstrictatime", ma.MOUNT_ATTR_STRICTATIME, ma.MOUNT_ATTR__ATIME),
        ("rrelatime", ma.MOUNT_ATTR_RELATIME, ma.MOUNT_ATTR__ATIME),
        ("ratime", ma.MOUNT_ATTR_RELATIME, ma.MOUNT_ATTR__ATIME),
        ("rnostrictatime", ma.MOUNT_ATTR_RELATIME, ma.MOUNT_ATTR__ATIME),
        ("rnorelatime", 0, 0),
    ],
)
def test_recursive_options(option: str, attr_set: int, attr_clr: int) -> None:
    plan = parse_mount_options([option])
    assert (plan.rec_attr_set, plan.rec_attr_clr) == (attr_set, attr_clr)
    assert plan.flags == 0 and plan.data == ""
    assert plan.has_recursive_attrs == bool(attr_set or attr_clr)


def test_recursive_atime_is_one_enum_value() -> None:
    assert parse_mount_options(["rnoatime", "ratime"]).rec_attr_set == ma.MOUNT_ATTR_RELATIME
    assert parse_mount_options(["rstrictatime", "ratime"]).rec_attr_set == ma.MOUNT_ATTR_STRICTATIME
    assert parse_mount_options(["rnoatime", "rnostrictatime"]).rec_attr_set == ma.MOUNT_ATTR_NOATIME
    plan = parse_mount_options(["rro", "rnoatime", "rstrictatime", "rnosuid"])
    assert plan.rec_attr_set == ma.MOUNT_ATTR_RDONLY | ma.MOUNT_ATTR_NOSUID | ma.MOUNT_ATTR_STRICTATIME
    assert plan.rec_attr_clr == ma.MOUNT_ATTR__ATIME
    # A later opposite option undoes an earlier one.
    plan = parse_mount_options(["rro", "rrw"])
    assert (plan.rec_attr_set, plan.rec_attr_clr) == (0, ma.MOUNT_ATTR_RDONLY)


def test_idmap_tmpcopyup_defaults_and_unknown_options() -> None:
    plan = parse_mount_options(["idmap"])
    assert plan.idmap and not plan.idmap_recursive and plan.data == ""
    plan = parse_mount_options(["rbind", "ridmap"])
    assert plan.idmap and plan.idmap_recursive
    plan = parse_mount_options(["tmpcopyup", "defaults", "", "acl", "uid=5", "gid=5", "newinstance"])
    assert plan.tmpcopyup
    assert plan.flags == 0
    assert plan.data == "acl,uid=5,gid=5,newinstance"  # runc: unknown => data, in order


def test_no_options() -> None:
    assert parse_mount_options(None) == mo.MountPlan()
    assert parse_mount_options([]) == mo.MountPlan()


@given(st.lists(st.one_of(st.sampled_from(mo.KNOWN_OPTIONS), st.text(max_size=20)), max_size=30))
def test_any_option_list_parses(options: list[str]) -> None:
    plan = parse_mount_options(options)
    assert plan.flags & ~ALL_MS == 0
    assert plan.flags & plan.cleared_flags == 0
    assert plan.rec_attr_set & plan.rec_attr_clr & ~ma.MOUNT_ATTR__ATIME == 0
    data = [o for o in options if o and o not in mo.KNOWN_OPTIONS]
    assert plan.data == ",".join(data)
    assert len(plan.propagations) == sum(o in mo.PROPAGATION_FLAGS for o in options)


# --- real: mount_setattr in a private mount namespace --------------------------------------------------


def mount_opts(path: str) -> set[str]:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                return set(fields[5].split(","))
    raise AssertionError(f"{path} is not a mount point")


@ROOT
def test_recursive_options_apply_to_submounts(tmp_path: Path) -> None:
    from engine.linux import syscalls as sc

    top = str(tmp_path / "top")
    sub = top + "/sub"

    def child() -> dict[str, list[str]]:
        sc.unshare(sc.CLONE_NEWNS)
        sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        os.mkdir(top)
        plan = parse_mount_options(["nosuid", "mode=755", "size=1m"])
        sc.mount("tmpfs", top, "tmpfs", plan.flags, plan.data)
        os.mkdir(sub)
        sc.mount("tmpfs", sub, "tmpfs", 0, None)
        out = {}
        for options in (["rro", "rnoatime", "rnodev"], ["rrw", "ratime"], ["rstrictatime", "rnosymfollow"]):
            plan = parse_mount_options(options)
            ma.mount_setattr(sc.AT_FDCWD, top, sc.AT_RECURSIVE, attr_set=plan.rec_attr_set, attr_clr=plan.rec_attr_clr)
            out[",".join(options)] = sorted(mount_opts(sub))
        return out

    out = run_in_child(child)
    assert "ok" in out, out
    got = out["ok"]
    assert {"ro", "noatime", "nodev"} <= set(got["rro,rnoatime,rnodev"])
    assert "rw" in got["rrw,ratime"] and "relatime" in got["rrw,ratime"] and "noatime" not in got["rrw,ratime"]
    assert "nosymfollow" in got["rstrictatime,rnosymfollow"]
    assert "relatime" not in got["rstrictatime,rnosymfollow"] and "noatime" not in got["rstrictatime,rnosymfollow"]


@ROOT
def test_mount_setattr_error_names_the_path() -> None:
    out = run_in_child(lambda: ma.mount_setattr(sc.AT_FDCWD, "/nonexistent/x", 0, attr_set=ma.MOUNT_ATTR_RDONLY))
    assert "mount_setattr" in out["error"] and "/nonexistent/x" in out["error"]
