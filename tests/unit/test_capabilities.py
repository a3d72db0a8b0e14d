"""engine.linux.capabilities: the name table, resolving config.json sets, and applying them for real.

The real tests fork: the child applies the sets, reads /proc/self/status and reports through a pipe.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
from typing import Any

import pytest

from engine.linux import capabilities as caps
from engine.linux.libc import libc
from tests.forked import CAP_SYS_RESOURCE, drop_capability
from tests.forked import run_in_child_with_status as run_in_child

ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def proc_status() -> dict[str, str]:
    with open("/proc/self/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def status_caps() -> dict[str, int]:
    s = proc_status()
    return {key: int(s[key], 16) for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def mask(*names: str) -> int:
    return caps.names_to_mask(names)


HELD = caps.current_sets() if os.geteuid() == 0 else {"permitted": 0, "bounding": 0}


# --- tables --------------------------------------------------------------------------------------------


def test_table_covers_every_capability_up_to_checkpoint_restore() -> None:
    assert caps.CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert sorted(caps.CAPABILITIES.values()) == list(range(41))
    assert caps.cap_name(21) == "CAP_SYS_ADMIN"
    assert caps.cap_name(63) == "CAP_63"
    for name, number in caps.CAPABILITIES.items():
        assert caps.cap_number(name) == number


def test_table_matches_the_kernel_header_names_in_capabilities_7() -> None:
    # Every name is CAP_ + upper-case words, as config.json spells them.
    assert all(re.fullmatch(r"CAP_[A-Z_]+", name) for name in caps.CAPABILITIES)


def test_unknown_name_is_an_error_naming_it() -> None:
    with pytest.raises(caps.UnknownCapability, match="CAP_CHWON"):
        caps.cap_number("CAP_CHWON")
    with pytest.raises(caps.UnknownCapability, match=r"capabilities\.effective.*'CAP_BOGUS'"):
        caps.resolve({"effective": ["CAP_CHOWN", "CAP_BOGUS"]}, kernel_last_cap=40)


def test_unknown_name_can_be_a_warning_as_in_runc() -> None:
    warnings: list[str] = []
    masks = caps.resolve({"bounding": ["CAP_BOGUS", "CAP_KILL"]}, warn=warnings.append, unknown="warn")
    assert masks["bounding"] == mask("CAP_KILL")
    assert any("CAP_BOGUS" in w for w in warnings)


def test_caps_newer_than_the_kernel_are_warned_about_and_skipped() -> None:
    warnings: list[str] = []
    masks = caps.resolve(
        {"bounding": ["CAP_BPF", "CAP_CHOWN", "CAP_CHECKPOINT_RESTORE"], "permitted": ["CAP_PERFMON"]},
        warn=warnings.append,
        kernel_last_cap=37,  # a 5.4 kernel: no PERFMON, BPF, CHECKPOINT_RESTORE
    )
    assert masks["bounding"] == mask("CAP_CHOWN")
    assert masks["permitted"] == 0
    assert len(warnings) == 1
    assert "CAP_BPF" in warnings[0] and "CAP_PERFMON" in warnings[0] and "cap_last_cap=37" in warnings[0]


def test_absent_sets_are_empty() -> None:
    assert caps.resolve(None, kernel_last_cap=40) == dict.fromkeys(caps.CAP_SETS, 0)
    assert caps.resolve({"effective": None}, kernel_last_cap=40)["effective"] == 0


def test_last_cap_reads_the_kernel() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert caps.last_cap() == int(f.read())


def test_mask_names_round_trip() -> None:
    names = ["CAP_CHOWN", "CAP_NET_RAW", "CAP_CHECKPOINT_RESTORE"]
    assert caps.mask_to_names(caps.names_to_mask(names)) == names


# --- real: as root, in a child -------------------------------------------------------------------------


@ROOT
def test_apply_capabilities_sets_exactly_the_five_sets() -> None:
    wanted = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETPCAP"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    }

    def child() -> dict[str, int]:
        caps.apply_capabilities(wanted, warn=lambda m: None)
        return status_caps()

    out, status = run_in_child(child)
    assert status == 0 and "ok" in out, out
    got = out["ok"]
    assert got["CapBnd"] == mask(*wanted["bounding"])
    assert got["CapPrm"] == mask(*wanted["permitted"])
    assert got["CapEff"] == mask(*wanted["effective"])
    assert got["CapInh"] == mask(*wanted["inheritable"])
    assert got["CapAmb"] == mask(*wanted["ambient"])


@ROOT
def test_no_capabilities_object_drops_everything() -> None:
    out, status = run_in_child(lambda: (caps.apply_capabilities(None), status_caps())[1])
    assert status == 0 and out["ok"] == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": 0, "CapAmb": 0}


@ROOT
def test_caps_the_runtime_does_not_hold_are_warned_about_not_fatal() -> None:
    # config.md: "Runtimes SHOULD NOT fail if the container configuration requests capabilities that
    # cannot be granted". This machine's runtime lacks CAP_SYS_RESOURCE; the child drops it everywhere else.
    everything = [name for name, n in caps.CAPABILITIES.items() if n <= caps.last_cap()]
    wanted = {key: everything for key in ("bounding", "permitted", "effective", "inheritable")}

    def child() -> dict[str, Any]:
        drop_capability(CAP_SYS_RESOURCE)
        warnings: list[str] = []
        caps.apply_capabilities(wanted, warn=warnings.append)
        return {"caps": status_caps(), "warnings": warnings}

    out, status = run_in_child(child)
    assert status == 0 and "ok" in out, out
    got = out["ok"]["caps"]
    held = HELD["permitted"] & ~(1 << CAP_SYS_RESOURCE)
    assert not got["CapPrm"] >> CAP_SYS_RESOURCE & 1
    assert got["CapPrm"] == held and got["CapEff"] == held
    assert any("CAP_SYS_RESOURCE" in w for w in out["ok"]["warnings"])


@ROOT
def test_effective_outside_permitted_is_warned_about() -> None:
    def child() -> dict[str, Any]:
        warnings: list[str] = []
        caps.apply_capabilities(
            {"bounding": ["CAP_KILL", "CAP_CHOWN"], "permitted": ["CAP_KILL"], "effective": ["CAP_KILL", "CAP_CHOWN"]},
            warn=warnings.append,
        )
        return {"caps": status_caps(), "warnings": warnings}

    out, _ = run_in_child(child)
    assert out["ok"]["caps"]["CapEff"] == mask("CAP_KILL")
    assert any("CAP_CHOWN" in w and "permitted" in w for w in out["ok"]["warnings"])


@ROOT
def test_switch_to_non_root_user_keeps_the_configured_caps() -> None:
    wanted = {
        "bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "permitted": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "effective": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "inheritable": ["CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    }
    user = {"uid": 1000, "gid": 1001, "additionalGids": [2000, 2001], "umask": 0o027}

    def child() -> dict[str, Any]:
        os.setgroups([0, 5, 6])  # groups the runtime had must not leak
        libc.prctl(caps.PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        caps.apply_user_and_capabilities(user, wanted)
        s = proc_status()
        pdeath = ctypes.c_int(0)
        libc.prctl(caps.PR_GET_PDEATHSIG, ctypes.addressof(pdeath), 0, 0, 0)
        return {
            "caps": status_caps(),
            "uid": s["Uid"],
            "gid": s["Gid"],
            "groups": s["Groups"],
            "pdeath": pdeath.value,
            "umask": os.umask(0),
        }

    out, status = run_in_child(child)
    assert status == 0 and "ok" in out, out
    got = out["ok"]
    assert got["uid"].split() == ["1000"] * 4
    assert got["gid"].split() == ["1001"] * 4
    assert got["groups"].split() == ["2000", "2001"]
    assert got["caps"]["CapEff"] == mask(*wanted["effective"])
    assert got["caps"]["CapPrm"] == mask(*wanted["permitted"])
    assert got["caps"]["CapAmb"] == mask("CAP_NET_BIND_SERVICE")
    assert got["caps"]["CapBnd"] == mask(*wanted["bounding"])
    assert got["pdeath"] == signal.SIGTERM  # the kernel cleared it on setuid; it was restored
    assert got["umask"] == 0o027


@ROOT
def test_after_exec_a_non_root_process_keeps_only_its_ambient_caps() -> None:
    """The reason for the ambient set: exec as uid 1000 recomputes the sets from it."""
    wanted = {
        "bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "permitted": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "effective": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "inheritable": ["CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    }
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.dup2(w, 1)
            caps.apply_user_and_capabilities({"uid": 1000, "gid": 1000}, wanted)
            os.execv("/bin/grep", ["grep", "^Cap", "/proc/self/status"])
        finally:
            os._exit(127)
    os.close(w)
    text = b""
    while chunk := os.read(r, 4096):
        text += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, text
    got = {k: int(v, 16) for k, v in re.findall(r"(Cap\w+):\s+([0-9a-f]+)", text.decode())}
    assert got["CapEff"] == got["CapPrm"] == got["CapAmb"] == mask("CAP_NET_BIND_SERVICE")


@ROOT
def test_setgroups_denied_with_groups_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(caps, "_setgroups_allowed", lambda: False)
    out, _ = run_in_child(lambda: caps.switch_user({"uid": 0, "gid": 0, "additionalGids": [10]}))
    assert "additionalGids" in out["error"] and "denied" in out["error"]


@ROOT
def test_switch_user_can_keep_an_effective_gid_for_the_trampoline() -> None:
    """exec_gid: real gid the user's, effective and saved exec_gid (what makes the kernel exec the trampoline that
    waits for start non-dumpable); the trampoline, unprivileged by then, may still set all three to the real one."""

    def child() -> dict[str, Any]:
        caps.switch_user({"uid": 1000, "gid": 1000}, exec_gid=65534)
        switched = os.getresgid()
        os.setresgid(1000, 1000, 1000)
        return {"switched": switched, "after": os.getresgid(), "uids": os.getresuid()}

    out, _ = run_in_child(child)
    assert out["ok"] == {"switched": [1000, 65534, 65534], "after": [1000, 1000, 1000], "uids": [1000, 1000, 1000]}


@ROOT
def test_no_new_privileges() -> None:
    def child() -> dict[str, Any]:
        before = caps.no_new_privileges()
        caps.set_no_new_privileges()
        return {"before": before, "after": caps.no_new_privileges(), "status": proc_status()["NoNewPrivs"]}

    out, status = run_in_child(child)
    assert status == 0 and out["ok"] == {"before": False, "after": True, "status": "1"}


def test_the_bounding_set_is_dropped_with_one_prctl_a_capability(monkeypatch: pytest.MonkeyPatch) -> None:
    # The init drops the bounding set while `engine start` waits for its exec: a drop per capability (runc's
    # way), reads only of the kept ones, and no read of the whole set afterwards.
    bounding = set(range(41))
    calls: list[tuple[int, int]] = []

    class FakeLibc:
        def prctl(self, option: int, cap: int, *_: int) -> int:
            calls.append((option, cap))
            if option == caps.PR_CAPBSET_DROP:
                bounding.discard(cap)
                return 0
            return int(cap in bounding)

    monkeypatch.setattr(caps, "libc", FakeLibc())
    keep = mask("CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert caps.drop_bounding_set(keep, kernel_last_cap=40) == keep
    assert bounding == {caps.CAPABILITIES["CAP_KILL"], caps.CAPABILITIES["CAP_NET_BIND_SERVICE"]}
    assert len(calls) == 41, calls
