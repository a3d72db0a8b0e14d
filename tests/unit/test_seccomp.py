"""engine.linux.seccomp: name tables against config-linux.md, profile compilation, and real filters.

Every real test loads the filter in a forked child (a filter can never be removed) and reports what the
filtered syscalls did through a pipe; KILL-style actions are checked from the child's wait status.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.linux import seccomp
from engine.linux.libc import libc
from engine.spec.constants import SECCOMP_ARCHS
from tests.forked import run_in_child_with_status as run_in_child

ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_SYS_ADMIN to load without no_new_privs)")
DATA = Path(__file__).parent / "data"

libc.syscall.restype = ctypes.c_long
SYS = {"kexec_load": 246, "swapon": 167, "add_key": 248, "keyctl": 250, "personality": 135, "unshare": 272}
CLONE_NEWUSER = 0x10000000


def err_of(call: Callable[[], Any]) -> int:
    """0 if call() succeeded, else its errno."""
    try:
        call()
    except OSError as err:
        return err.errno or -1
    return 0


def raw(name: str, *args: int) -> int:
    """A raw syscall's errno (0 on success)."""
    result = libc.syscall(ctypes.c_long(SYS[name]), *[ctypes.c_long(a) for a in args])
    return ctypes.get_errno() if result == -1 else 0


def seccomp_status() -> tuple[str, str]:
    with open("/proc/self/status") as f:
        s = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    return s["Seccomp"], s["Seccomp_filters"]


def arg_rule(**arg: Any) -> dict[str, Any]:
    return {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "args": [arg]}


def allow_but(*rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules), **extra}


# --- tables against the spec ---------------------------------------------------------------------------


def spec_seccomp_section(spec_dir: Path) -> str:
    text = (spec_dir / "config-linux.md").read_text()
    return text.split('name="configLinuxSeccomp"', 1)[1].split("### Example", 1)[0]


def test_tables_cover_every_constant_the_spec_lists(spec_dir: Path) -> None:
    section = spec_seccomp_section(spec_dir)
    actions = set(re.findall(r"`(SCMP_ACT_\w+)`", section))
    operators = set(re.findall(r"`(SCMP_CMP_\w+)`", section))
    arches = set(re.findall(r"`(SCMP_ARCH_\w+)`", section))
    flags = set(re.findall(r"`(SECCOMP_FILTER_FLAG_\w+)`", section))
    assert len(actions) == 9 and len(operators) == 7 and len(arches) == 23 and len(flags) == 4
    assert actions == set(seccomp.ACTIONS)
    assert operators == set(seccomp.OPERATORS)
    assert arches == set(seccomp.spec_architectures())
    assert seccomp.spec_architectures() == SECCOMP_ARCHS  # the compiled form of the models' list, in its order
    assert flags == set(seccomp.FLAGS)


def test_arch_names_resolve_through_libseccomp() -> None:
    assert seccomp.arch_token("SCMP_ARCH_X86_64") == 0xC000003E  # AUDIT_ARCH_X86_64
    assert seccomp.arch_token("SCMP_ARCH_X86") == 0x40000003
    assert seccomp.arch_token("SCMP_ARCH_AARCH64") == 0xC00000B7
    with pytest.raises(ValueError, match="SCMP_ARCH_VAX"):
        seccomp.arch_token("SCMP_ARCH_VAX")


def test_describe_names_the_binding() -> None:
    text = seccomp.describe()
    assert text.startswith("libseccomp 2.") and "ctypes" in text and "API level" in text


# --- compiling profiles (nothing loaded) ---------------------------------------------------------------


def test_errno_defaults_to_eperm_and_errno_ret_is_used() -> None:
    plan = seccomp.compile_profile(
        allow_but(
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV},
            {"names": ["chdir"], "action": "SCMP_ACT_TRACE"},
        )
    )
    actions = {rule.syscall: rule.action for rule in plan.rules}
    assert actions == {
        "mkdir": seccomp.ACT_ERRNO | errno.EPERM,
        "rmdir": seccomp.ACT_ERRNO | errno.EXDEV,
        "chdir": seccomp.ACT_TRACE | errno.EPERM,
    }
    plan = seccomp.compile_profile({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38})
    assert plan.default_action == seccomp.ACT_ERRNO | 38


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({}, "defaultAction is required"),
        ({"defaultAction": "SCMP_ACT_NOPE"}, "unknown seccomp action 'SCMP_ACT_NOPE'"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, "does not return an errno"),
        (allow_but({"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 1}), r"syscalls\[0\].*errno"),
        (allow_but({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": -1}), "errnoRet"),
        (allow_but({"names": [], "action": "SCMP_ACT_ERRNO"}), "at least one"),
        (allow_but(architectures=["SCMP_ARCH_PDP11"]), "unknown architecture 'SCMP_ARCH_PDP11'"),
        (allow_but(flags=["SECCOMP_FILTER_FLAG_BOGUS"]), "unknown seccomp flag"),
        (allow_but(arg_rule(index=6, value=0, op="SCMP_CMP_EQ")), "index must be 0..5"),
        (allow_but(arg_rule(index=0, value=0, op="SCMP_CMP_XX")), "unknown operator 'SCMP_CMP_XX'"),
        (allow_but(arg_rule(index=0, value=-1, op="SCMP_CMP_EQ")), r"args\[0\]\.value"),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "cannot be the default action"),
        (allow_but({"names": ["write"], "action": "SCMP_ACT_NOTIFY"}), "write"),
        (allow_but(listenerMetadata="x"), "listenerMetadata"),
    ],
)
def test_invalid_profiles_are_rejected_with_the_field_named(profile: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        seccomp.compile_profile(profile, warn=lambda m: None)


def test_unknown_syscalls_are_skipped_not_errors() -> None:
    plan = seccomp.compile_profile(allow_but({"names": ["mkdir", "no_such_call_ever"], "action": "SCMP_ACT_ERRNO"}))
    assert [rule.syscall for rule in plan.rules] == ["mkdir"]
    assert plan.skipped_syscalls == ["no_such_call_ever"]


def test_rules_repeating_the_default_action_are_skipped() -> None:
    plan = seccomp.compile_profile(allow_but({"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}))
    assert plan.rules == []


def test_args_on_distinct_indexes_are_one_rule_same_index_are_separate_rules() -> None:
    eq = seccomp.OPERATORS["SCMP_CMP_EQ"]
    plan = seccomp.compile_profile(
        allow_but(
            {
                "names": ["getpriority"],
                "action": "SCMP_ACT_ERRNO",
                "args": [
                    {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": 7, "op": "SCMP_CMP_EQ"},
                ],
            },
            {
                "names": ["umask"],
                "action": "SCMP_ACT_ERRNO",
                "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                    {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                ],
            },
        )
    )
    by_name: dict[str, list[seccomp.Rule]] = {}
    for rule in plan.rules:
        by_name.setdefault(rule.syscall, []).append(rule)
    assert [r.conditions for r in by_name["getpriority"]] == [((0, eq, 0, 0), (1, eq, 7, 0))]
    assert [r.conditions for r in by_name["umask"]] == [((0, eq, 1, 0),), ((0, eq, 2, 0),)]


def test_flags_default_to_spec_allow_like_runc_and_foreign_arches_are_warned() -> None:
    assert seccomp.compile_profile(allow_but()).flags == ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    assert seccomp.compile_profile(allow_but(flags=[])).flags == []
    warnings: list[str] = []
    plan = seccomp.compile_profile(
        allow_but(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_LOONGARCH64"]),
        warn=warnings.append,
    )
    assert plan.architectures == [0xC000003E, 0x40000003, 0x4000003E]
    if seccomp.arch_token("SCMP_ARCH_LOONGARCH64") is None:  # libseccomp < 2.6
        assert any("LOONGARCH64" in w for w in warnings)


def test_notify_needs_a_listener() -> None:
    with pytest.raises(ValueError, match="listenerPath"):
        seccomp.build_and_load(allow_but({"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}))


def test_container_process_state_shape() -> None:
    state = {"ociVersion": "1.3.0", "id": "c1", "status": "creating", "pid": 42, "bundle": "/b"}
    msg = seccomp.container_process_state(state, pid=43, metadata="m", oci_version="1.3.0")
    assert msg == {"ociVersion": "1.3.0", "fds": ["seccompFd"], "pid": 43, "metadata": "m", "state": state}
    assert "metadata" not in seccomp.container_process_state(state, pid=1, metadata=None, oci_version="1.3.0")


# --- real filters --------------------------------------------------------------------------------------


@ROOT
def test_errno_rule_denies_mkdir_with_the_right_errno(tmp_path: Path) -> None:
    profile = allow_but(
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV},
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    )
    (tmp_path / "d").mkdir()

    def child() -> dict[str, Any]:
        before = seccomp_status()
        fd = seccomp.build_and_load(profile)
        return {
            "fd": fd,
            "before": before,
            "after": seccomp_status(),
            "mkdir": err_of(lambda: os.mkdir(tmp_path / "new")),
            "rmdir": err_of(lambda: os.rmdir(tmp_path / "d")),
            "listdir": err_of(lambda: os.listdir(tmp_path)),
        }

    out, status = run_in_child(child)
    assert status == 0 and "ok" in out, out
    got = out["ok"]
    assert got["fd"] is None
    assert got["before"] == ["0", "0"] and got["after"] == ["2", "1"]
    assert got["mkdir"] == errno.EPERM
    assert got["rmdir"] == errno.EXDEV
    assert got["listdir"] == 0
    assert not (tmp_path / "new").exists() and (tmp_path / "d").exists()


@ROOT
def test_arg_rule_on_personality() -> None:
    per_linux32 = 0x0008
    profile = allow_but(
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.EACCES,
            "args": [{"index": 0, "value": per_linux32, "op": "SCMP_CMP_EQ"}],
        }
    )

    def child() -> dict[str, int]:
        seccomp.build_and_load(profile)
        return {"linux32": raw("personality", per_linux32), "query": raw("personality", 0xFFFFFFFF)}

    out, _ = run_in_child(child)
    assert out["ok"] == {"linux32": errno.EACCES, "query": 0}


# getpgid(pid) is the probe: one integer argument, and glibc reports its errno (umask(2) cannot fail, so
# glibc's umask() returns the raw -errno without setting errno). Allowed pids may not exist (ESRCH): the
# tests only tell ENOTBLK, the rule's errno, from anything else.
PROBE_CASES = [
    ("SCMP_CMP_NE", 0o022, 0, [0o077, 0o002], [0o022]),
    ("SCMP_CMP_LT", 0o020, 0, [0o010, 0o000], [0o020, 0o030]),
    ("SCMP_CMP_LE", 0o020, 0, [0o010, 0o020], [0o021, 0o030]),
    ("SCMP_CMP_EQ", 0o020, 0, [0o020], [0o010, 0o021]),
    ("SCMP_CMP_GE", 0o020, 0, [0o020, 0o030], [0o010, 0o017]),
    ("SCMP_CMP_GT", 0o020, 0, [0o021, 0o030], [0o020, 0o010]),
    # MASKED_EQ: value is the mask, valueTwo the expected result: (arg & 0o070) == 0o020.
    ("SCMP_CMP_MASKED_EQ", 0o070, 0o020, [0o020, 0o027, 0o720], [0o030, 0o002, 0o060]),
]


@ROOT
@pytest.mark.parametrize(("op", "value", "value_two", "blocked", "allowed"), PROBE_CASES)
def test_every_operator(op: str, value: int, value_two: int, blocked: list[int], allowed: list[int]) -> None:
    profile = allow_but(
        {
            "names": ["getpgid"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.ENOTBLK,
            "args": [{"index": 0, "value": value, "valueTwo": value_two, "op": op}],
        }
    )

    def child() -> dict[str, bool]:
        seccomp.build_and_load(profile)
        return {oct(m): err_of(lambda m=m: os.getpgid(m)) == errno.ENOTBLK for m in blocked + allowed}

    out, _ = run_in_child(child)
    assert "ok" in out, out
    assert out["ok"] == {oct(m): m in blocked for m in blocked + allowed}


@ROOT
def test_same_index_args_are_ored_distinct_index_args_are_anded() -> None:
    profile = allow_but(
        {
            "names": ["getpgid"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.ENOTBLK,
            "args": [
                {"index": 0, "value": 11, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 22, "op": "SCMP_CMP_EQ"},
            ],
        },
        {
            "names": ["getpriority"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.ENOTBLK,
            "args": [
                {"index": 0, "value": os.PRIO_PROCESS, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 4242, "op": "SCMP_CMP_EQ"},
            ],
        },
    )

    def child() -> dict[str, int]:
        seccomp.build_and_load(profile)
        return {
            "getpgid 11": err_of(lambda: os.getpgid(11)),
            "getpgid 22": err_of(lambda: os.getpgid(22)),
            "getpgid 0": err_of(lambda: os.getpgid(0)),
            "prio process 4242": err_of(lambda: os.getpriority(os.PRIO_PROCESS, 4242)),
            "prio process 0": err_of(lambda: os.getpriority(os.PRIO_PROCESS, 0)),
            "prio pgrp 4242": err_of(lambda: os.getpriority(os.PRIO_PGRP, 4242)),
        }

    out, _ = run_in_child(child)
    got = out["ok"]
    assert got["getpgid 11"] == got["getpgid 22"] == errno.ENOTBLK
    assert got["getpgid 0"] == 0
    assert got["prio process 4242"] == errno.ENOTBLK
    assert got["prio process 0"] == 0
    assert got["prio pgrp 4242"] != errno.ENOTBLK  # ESRCH from the kernel: the AND did not match


@ROOT
@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"])
def test_kill_and_trap_end_the_process_with_sigsys(action: str) -> None:
    profile = allow_but({"names": ["getppid"], "action": action})

    def child() -> str:
        seccomp.build_and_load(profile)
        os.getppid()
        return "survived"

    out, status = run_in_child(child)
    assert out == {}
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


@ROOT
def test_trace_without_a_tracer_is_enosys_and_log_allows() -> None:
    profile = allow_but(
        {"names": ["getpriority"], "action": "SCMP_ACT_TRACE"},
        {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
    )

    def child() -> dict[str, int]:
        seccomp.build_and_load(profile)
        return {"trace": err_of(lambda: os.getpriority(os.PRIO_PROCESS, 0)), "log": os.getppid()}

    out, _ = run_in_child(child)
    assert out["ok"]["trace"] == errno.ENOSYS
    assert out["ok"]["log"] == os.getpid()


@ROOT
@pytest.mark.parametrize(
    "flags", [["SECCOMP_FILTER_FLAG_TSYNC"], ["SECCOMP_FILTER_FLAG_LOG"], ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"], None, []]
)
def test_flags_load(flags: list[str] | None) -> None:
    profile = allow_but({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"})
    if flags is not None:
        profile["flags"] = flags

    def child() -> dict[str, Any]:
        seccomp.build_and_load(profile, warn=lambda m: None)
        return {"mkdir": err_of(lambda: os.mkdir("/proc/nope")), "status": seccomp_status()}

    out, _ = run_in_child(child)
    assert out["ok"] == {"mkdir": errno.EPERM, "status": ["2", "1"]}


@ROOT
def test_without_no_new_privs_loading_needs_cap_sys_admin_and_says_so() -> None:
    from engine.linux import capabilities

    profile = allow_but({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"})
    kill_only = {"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"], "effective": ["CAP_KILL"]}

    def child() -> dict[str, Any]:
        capabilities.apply_capabilities(kill_only)
        refused = err_of(lambda: seccomp.build_and_load(profile))
        try:
            seccomp.build_and_load(profile)
        except OSError as err:
            message = str(err)
        capabilities.set_no_new_privileges()  # the other order: no_new_privs, then load as late as possible
        seccomp.build_and_load(profile)
        return {"refused": refused, "message": message, "status": seccomp_status()}

    out, _ = run_in_child(child)
    assert "ok" in out, out
    assert out["ok"]["refused"] == errno.EACCES
    assert "CAP_SYS_ADMIN" in out["ok"]["message"]
    assert out["ok"]["status"] == ["2", "1"]


def _agent(server: socket.socket, answers: dict[str, Any]) -> None:
    """A seccomp agent: take one container process state + fd, then answer notifications."""
    conn, _ = server.accept()
    with conn:
        payload, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
        while more := conn.recv(1 << 16):  # the runtime may use several sendmsg calls
            payload += more
    answers["state"] = json.loads(payload)
    answers["fds"] = len(fds)
    fd = fds[0]
    answers["fd_kind"] = os.readlink(f"/proc/self/fd/{fd}")
    mkdir = seccomp.syscall_number("mkdir")
    try:
        while True:
            req = seccomp.notify_receive(fd)
            if req.nr == mkdir:
                answers["seen_path_arg"] = req.args[0] != 0
                seccomp.notify_respond(fd, req.id, error=errno.EXDEV)
                break
            seccomp.notify_respond(fd, req.id, flags=1)  # SECCOMP_USER_NOTIF_FLAG_CONTINUE
    except OSError as err:
        answers["agent_error"] = str(err)
    finally:
        os.close(fd)


@ROOT
@pytest.mark.parametrize(
    "flags",
    [
        None,
        ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"],
        ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
    ],
)
def test_notify_sends_the_fd_to_the_listener_and_the_agent_answers(tmp_path: Path, flags: list[str] | None) -> None:
    listener = str(tmp_path / "agent.sock")
    profile = allow_but(
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"},
        listenerPath=listener,
        listenerMetadata="MKNOD=/dev/null",
    )
    if flags is not None:
        profile["flags"] = flags
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(listener)
    server.listen(1)
    state = {"ociVersion": "1.3.0", "id": "c1", "status": "creating", "pid": 0, "bundle": str(tmp_path)}

    def child() -> dict[str, Any]:
        sent: list[int] = []

        def hand_on(fd: int) -> None:
            sent.append(fd)
            own = dict(state, pid=os.getpid())
            seccomp.send_notify_fd(listener, fd, json.dumps(own).encode(), "MKNOD=/dev/null")

        fd = seccomp.build_and_load(profile, on_notify_fd=hand_on)
        result = {"fd": fd, "sent": sent, "mkdir": err_of(lambda: os.mkdir(tmp_path / "x")), "pid": os.getpid()}
        if fd is not None:
            os.close(fd)
        return result

    answers: dict[str, Any] = {}
    # The agent thread is blocked in accept() when we fork: the child gets only the forking thread.
    # The child then blocks in mkdir until the agent answers.
    agent = threading.Thread(target=_agent, args=(server, answers), daemon=True)
    agent.start()
    out, status = run_in_child(child)
    agent.join(timeout=20)
    server.close()
    assert status == 0
    assert "ok" in out, out
    got = out["ok"]
    assert got["fd"] is not None and got["sent"] == [got["fd"]]
    assert got["mkdir"] == errno.EXDEV, answers
    assert not (tmp_path / "x").exists()
    assert answers["fds"] == 1
    assert answers["fd_kind"] == "anon_inode:seccomp notify"
    assert answers["seen_path_arg"] is True
    msg = answers["state"]
    assert msg["ociVersion"] == "1.3.0" and msg["fds"] == ["seccompFd"]
    assert msg["pid"] == got["pid"] and msg["metadata"] == "MKNOD=/dev/null"
    assert msg["state"] == dict(state, pid=got["pid"])


@ROOT
def test_send_notify_fd_reports_a_missing_listener(tmp_path: Path) -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(OSError, match=r"listenerPath .*nobody\.sock"):
            seccomp.send_notify_fd(str(tmp_path / "nobody.sock"), r, b'{"pid": 1}', None)
    finally:
        os.close(r)
        os.close(w)


# --- the podman default profile ------------------------------------------------------------------------


def podman_profile() -> dict[str, Any]:
    return json.loads((DATA / "podman-default-seccomp.json").read_text())


def test_podman_profile_compiles_completely() -> None:
    plan = seccomp.compile_profile(podman_profile())
    assert plan.default_action == seccomp.ACT_ERRNO | errno.ENOSYS
    assert plan.architectures == [0xC000003E, 0x40000003, 0x4000003E]
    assert len(plan.rules) > 400
    assert plan.skipped_syscalls == []  # libseccomp 2.5.4 knows every name in it


@ROOT
def test_podman_profile_loads_lets_ls_run_and_denies_what_it_says(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("hello")

    def child() -> dict[str, Any]:
        seccomp.build_and_load(podman_profile())
        pid = os.fork()
        if pid == 0:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, 1)
            os.execv("/bin/ls", ["ls", "-la", "/", str(tmp_path)])
        _, ls_status = os.waitpid(pid, 0)
        with open(tmp_path / "f") as f:
            content = f.read()
        return {
            "status": seccomp_status(),
            "ls": os.waitstatus_to_exitcode(ls_status),
            "read": content,
            "listdir": sorted(os.listdir(tmp_path)),
            "kexec_load": raw("kexec_load", 0, 0, 0, 0),  # ERRNO(EPERM) in the profile
            "swapon": raw("swapon", 0, 0),  # ERRNO(EPERM) without CAP_SYS_ADMIN
            "add_key": raw("add_key", 0, 0, 0, 0, 0),  # not listed: defaultErrnoRet ENOSYS
            "personality odd": raw("personality", 0xDEAD),  # only 5 values allowed, rest default
            "personality query": raw("personality", 0xFFFFFFFF),
            "audit socket": err_of(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9)),
            # containers/common allows these (unlike Docker's default profile): not denied here.
            "keyctl": raw("keyctl", 0, -3, 0),  # KEYCTL_GET_KEYRING_ID of the session keyring
            "unshare user": raw("unshare", CLONE_NEWUSER),
        }

    out, status = run_in_child(child)
    assert status == 0 and "ok" in out, out
    got = out["ok"]
    assert got["status"] == ["2", "1"]
    assert got["ls"] == 0 and got["read"] == "hello" and got["listdir"] == ["f"]
    assert got["kexec_load"] == errno.EPERM
    assert got["swapon"] == errno.EPERM
    assert got["add_key"] == errno.ENOSYS
    assert got["personality odd"] == errno.ENOSYS
    assert got["personality query"] == 0
    assert got["audit socket"] == errno.EINVAL  # profile: socket(AF_NETLINK, *, NETLINK_AUDIT) -> EINVAL
    assert got["keyctl"] not in (errno.ENOSYS, errno.EPERM)
    assert got["unshare user"] == 0
