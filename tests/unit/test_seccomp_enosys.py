"""engine.linux.seccomp_enosys: runc's -ENOSYS stub, checked with a small cBPF interpreter (the logic) and by
loading real filters in forked children (the kernel's answer)."""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any

import pytest

from engine.linux import seccomp
from engine.linux import seccomp_enosys as stub
from engine.linux.libc import libc
from tests.forked import run_in_child_with_status as run_in_child
from tests.seccomp_probe import PROBES as NR
from tests.seccomp_probe import profile_before_clone3 as older_profile

ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_SYS_ADMIN to load without no_new_privs)")
X86_64 = pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers below are x86_64's")

AUDIT_I386 = 0x40000003
AUDIT_S390X = 0x80000016
X32 = stub.X32_SYSCALL_BIT
FILTER = "filter"  # the stub fell through to libseccomp's program

libc.syscall.restype = ctypes.c_long


def run_stub(program: list[stub.Insn], arch: int, nr: int) -> int | str:
    """Interpret the stub for one seccomp_data: the value it returns, or FILTER."""
    data = {stub.OFFSET_NR: nr, stub.OFFSET_ARCH: arch}
    acc, pc = 0, 0
    for _ in range(1000):
        if pc == len(program):
            return FILTER
        code, jt, jf, k = program[pc]
        pc += 1
        if code == stub.LD_W_ABS:
            acc = data[k]
        elif code == stub.RET_K:
            return k
        elif code == stub.JMP_JA:
            pc += k
        else:
            taken = {stub.JMP_JEQ_K: acc == k, stub.JMP_JGT_K: acc > k, stub.JMP_JSET_K: bool(acc & k)}[code]
            pc += jt if taken else jf
    raise AssertionError("the stub loops")


def test_syscalls_above_the_highest_known_get_enosys_on_that_architecture() -> None:
    program = stub.generate({stub.AUDIT_ARCH_X86_64: {stub.AUDIT_ARCH_X86_64: 434}})
    amd64 = stub.AUDIT_ARCH_X86_64
    assert run_stub(program, amd64, 1000) == run_stub(program, amd64, 435) == stub.RET_ENOSYS
    assert run_stub(program, amd64, 434) == run_stub(program, amd64, 0) == FILTER
    assert run_stub(program, amd64, X32 | 1000) == FILTER  # x32 is not listed: the filter decides
    assert run_stub(program, AUDIT_I386, 1000) == FILTER  # nor is i386


def test_x32_has_its_own_limit() -> None:
    amd64 = stub.AUDIT_ARCH_X86_64
    program = stub.generate({amd64: {amd64: 434, stub.SCMP_ARCH_X32: X32 | 547}})
    assert run_stub(program, amd64, 500) == stub.RET_ENOSYS
    assert run_stub(program, amd64, X32 | 500) == FILTER
    assert run_stub(program, amd64, X32 | 548) == stub.RET_ENOSYS
    only_x32 = stub.generate({amd64: {stub.SCMP_ARCH_X32: X32 | 547}})
    assert run_stub(only_x32, amd64, 1000) == FILTER and run_stub(only_x32, amd64, X32 | 548) == stub.RET_ENOSYS


def test_several_architectures_and_s390_multiplexing() -> None:
    amd64 = stub.AUDIT_ARCH_X86_64
    program = stub.generate({amd64: {amd64: 434}, AUDIT_I386: {AUDIT_I386: 440}, AUDIT_S390X: {AUDIT_S390X: 430}})
    assert run_stub(program, AUDIT_I386, 438) == FILTER and run_stub(program, AUDIT_I386, 441) == stub.RET_ENOSYS
    assert run_stub(program, AUDIT_S390X, 0) == stub.RET_ENOSYS  # unknown numbers land on setup(0) there
    assert run_stub(program, AUDIT_S390X, 431) == stub.RET_ENOSYS and run_stub(program, AUDIT_S390X, 5) == FILTER
    assert run_stub(program, amd64, 0) == FILTER  # 0 is read(2) on x86_64
    assert stub.generate({}) == []


@pytest.mark.parametrize(
    ("default", "wanted"),
    [
        (seccomp.ACT_ERRNO | errno.EPERM, True),
        (seccomp.ACT_KILL_PROCESS, True),
        (seccomp.ACT_KILL_THREAD, True),
        (seccomp.ACT_TRAP, True),
        (seccomp.ACT_ERRNO | errno.ENOSYS, False),  # already the answer
        (seccomp.ACT_ALLOW, False),
        (seccomp.ACT_LOG, False),
        (seccomp.ACT_TRACE | 7, False),  # a tracer handles new syscalls itself (runc's reasoning)
    ],
)
def test_which_default_actions_get_a_stub(default: int, wanted: bool) -> None:
    assert stub.needs_stub(default) is wanted


@X86_64
def test_the_stub_is_planned_only_where_runc_plans_it() -> None:
    archs = {"architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]}
    plan = seccomp.compile_profile(older_profile(**archs))
    assert plan.enosys_stub
    amd64 = stub.AUDIT_ARCH_X86_64
    assert (
        run_stub(plan.enosys_stub, amd64, 435) == stub.RET_ENOSYS and run_stub(plan.enosys_stub, amd64, 434) == FILTER
    )
    assert run_stub(plan.enosys_stub, AUDIT_I386, 1000) == stub.RET_ENOSYS
    assert seccomp.compile_profile(older_profile()).enosys_stub == []  # no architectures listed (runc 1.1)
    assert seccomp.compile_profile(older_profile(defaultAction="SCMP_ACT_LOG", **archs)).enosys_stub == []
    # A rule that repeats the default action is not in the filter, but its names still date the profile.
    dated = older_profile(**archs)
    dated["syscalls"].append({"names": ["openat2"], "action": "SCMP_ACT_ERRNO"})
    assert run_stub(seccomp.compile_profile(dated).enosys_stub, amd64, 437) == FILTER


def raw_errnos() -> dict[str, int]:
    out = {}
    for name, number in NR.items():
        result = libc.syscall(ctypes.c_long(number), *[ctypes.c_long(0)] * 5)
        out[name] = ctypes.get_errno() if result == -1 else 0
    return out


@ROOT
@X86_64
def test_loaded_filter_answers_enosys_above_the_profile_and_the_default_below() -> None:
    profile = older_profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    out, status = run_in_child(lambda: (seccomp.build_and_load(profile), raw_errnos())[1])
    assert status == 0 and "ok" in out, out
    assert out["ok"] == {
        "getcpu": errno.EPERM,  # known to the profile's era, not allowed: the default action
        "clone3": errno.ENOSYS,  # newer than the profile: glibc falls back to clone
        "openat2": errno.ENOSYS,
        "faccessat2": errno.ENOSYS,
        "unknown": errno.ENOSYS,
    }
    # Without architectures, as runc 1.1: no stub, everything unlisted gets the default action.
    out, status = run_in_child(lambda: (seccomp.build_and_load(older_profile()), raw_errnos())[1])
    assert status == 0 and set(out["ok"].values()) == {errno.EPERM}, out


@ROOT
@X86_64
def test_a_listener_still_comes_back_with_the_stub() -> None:
    profile = older_profile(architectures=["SCMP_ARCH_X86_64"])
    profile["syscalls"].append({"names": ["getcpu"], "action": "SCMP_ACT_NOTIFY"})

    def child() -> dict[str, Any]:
        fd = seccomp.build_and_load(profile, on_notify_fd=lambda fd: None)  # loaded by hand: NEW_LISTENER
        result = libc.syscall(ctypes.c_long(NR["unknown"]))
        return {"fd": fd is not None and fd >= 0, "unknown": ctypes.get_errno() if result == -1 else 0}

    out, status = run_in_child(child)
    assert status == 0 and out.get("ok") == {"fd": True, "unknown": errno.ENOSYS}, out
