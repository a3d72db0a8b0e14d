"""engine/process_setup.py through the kernel seam (engine/linux/kernel.py), without root: the order and the
arguments of the steps that finish the init and exec's process. The integration tests (test_container_setup,
test_exec, tests/security) prove that the real calls do what is recorded here."""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import process_setup
from engine.linux import kernel
from engine.linux import syscalls as sc
from engine.process_setup import SetupError
from tests.forked import run_in_child
from tests.kernel_double import RecordingKernel


@pytest.fixture
def double(tmp_path: Path) -> Iterator[RecordingKernel]:
    with kernel.use(RecordingKernel(tmp_path)) as recording:
        yield recording  # type: ignore[misc]


def steps(double: RecordingKernel) -> list[str]:
    return [call[0] for call in double.calls]


def config(**process: Any) -> dict[str, Any]:
    linux = process.pop("linux", {})
    return {"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}, **linux}, "process": {"args": ["sh"], **process}}


PLAN = object()  # stands for a compiled seccomp filter


def test_without_no_new_privileges_seccomp_is_loaded_while_we_still_have_cap_sys_admin(
    double: RecordingKernel,
) -> None:
    cfg = config(
        user={"uid": 1000, "gid": 1000},
        capabilities={"bounding": ["CAP_KILL"]},
        scheduler={"policy": "SCHED_OTHER"},
        ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 4},
        execCPUAffinity={"initial": "0", "final": "0-1"},
        linux={"personality": {"domain": "LINUX"}},
    )
    process_setup.become_the_process(cfg, {"pid": 1, "ociVersion": "1.3.0"}, PLAN, None, cpu_affinity="final")
    assert double.calls == [
        ("apply_personality", {"domain": "LINUX"}),
        ("apply_scheduler", {"policy": "SCHED_OTHER"}),
        ("apply_io_priority", {"class": "IOPRIO_CLASS_BE", "priority": 4}),
        ("apply_cpu_affinity", {"initial": "0", "final": "0-1"}, False),  # "final": exec's, after the cgroup
        ("load_seccomp", PLAN),
        ("apply_user_and_capabilities", {"uid": 1000, "gid": 1000}, {"bounding": ["CAP_KILL"]}),
    ]


def test_with_no_new_privileges_seccomp_is_the_very_last_step(double: RecordingKernel) -> None:
    cfg = config(user={"uid": 1000, "gid": 1000}, noNewPrivileges=True)
    process_setup.become_the_process(cfg, {"pid": 1, "ociVersion": "1.3.0"}, PLAN, None)
    assert steps(double) == ["apply_user_and_capabilities", "set_no_new_privileges", "load_seccomp"]


def test_nothing_asked_nothing_done_but_the_user(double: RecordingKernel) -> None:
    process_setup.become_the_process({"process": {"args": ["sh"]}}, {"pid": 1}, None, None)
    assert double.calls == [("apply_user_and_capabilities", {}, None)]


def test_the_last_steps_before_execve(double: RecordingKernel, monkeypatch: pytest.MonkeyPatch) -> None:
    """become the process, non-dumpable again (a user switch reset it), the startContainer hooks, signal
    dispositions undone, then the execve through the trampoline with the environment prepare_exec made."""
    events: list[Any] = []
    monkeypatch.setattr(process_setup, "restore_signals", lambda blocked=(): events.append("restore_signals"))

    class Trampoline:
        def execve(self, args: list[str], env: dict[str, str]) -> None:
            events.append(("execve", args, env))
            raise OSError(errno.ENOENT, "stop here")

    cfg = config(user={"uid": 1}, noNewPrivileges=True)
    with pytest.raises(OSError, match="stop here"):
        process_setup.exec_as_the_process(
            cfg,
            {"pid": 1, "ociVersion": "1.3.0"},
            PLAN,
            None,
            Trampoline(),  # type: ignore[arg-type]
            {"PATH": "/bin"},
            before_exec=lambda: events.append(("hooks", steps(double)[-1])),
        )
    assert steps(double) == ["apply_user_and_capabilities", "set_no_new_privileges", "load_seccomp", "set_dumpable"]
    assert double.calls[-1] == ("set_dumpable", False)
    assert events == [("hooks", "set_dumpable"), "restore_signals", ("execve", ["sh"], {"PATH": "/bin"})]


def test_prepare_exec_sets_rlimits_after_finding_the_program(
    double: RecordingKernel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # enter_cwd changes directory
    rlimits = [{"type": "RLIMIT_NOFILE", "hard": 64, "soft": 64}]
    env, executable = process_setup.prepare_exec(
        {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin:/usr/bin", "HOME=/root"], "rlimits": rlimits}
    )
    assert env == {"PATH": "/bin:/usr/bin", "HOME": "/root"}
    assert executable.endswith("/sh")
    assert double.calls == [("apply_rlimits", rlimits)]


def test_prepare_exec_fails_before_any_rlimit_when_the_program_is_missing(
    double: RecordingKernel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    process = {"args": ["no-such-program-here"], "env": ["PATH=/nonexistent"], "rlimits": [{"type": "RLIMIT_CORE"}]}
    with pytest.raises(SetupError, match="no-such-program-here"):
        process_setup.prepare_exec(process)
    assert double.calls == []


def test_namespaces_are_entered_user_first_mount_last(double: RecordingKernel) -> None:
    given = [("mount", 10), ("network", 11), ("pid", 12), ("user", 13), ("ipc", 14), ("uts", 15), ("cgroup", 16)]
    assert process_setup.enter_namespaces(given, lambda t: t) is True
    assert double.calls == [
        ("setns", 13, sc.CLONE_NEWUSER),
        ("setns", 14, sc.CLONE_NEWIPC),
        ("setns", 15, sc.CLONE_NEWUTS),
        ("setns", 11, sc.CLONE_NEWNET),
        ("setns", 12, sc.CLONE_NEWPID),
        ("setns", 16, sc.CLONE_NEWCGROUP),
        ("setns", 10, sc.CLONE_NEWNS),
    ]


def test_a_namespace_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    failing = RecordingKernel(tmp_path, fail={"setns": OSError(errno.EINVAL, "Invalid argument")})
    with kernel.use(failing), pytest.raises(SetupError) as caught:
        process_setup.enter_namespaces([("pid", 3), ("network", 4)], lambda t: f"linux.namespaces: {t} path /x")
    assert str(caught.value) == (
        "linux.namespaces: network path /x: cannot join: Invalid argument (is it a namespace of that type?)"
    )
    assert failing.calls == [("setns", 4, sc.CLONE_NEWNET)]  # the first in JOIN_ORDER, and nothing after it


def test_no_user_namespace_joined(double: RecordingKernel) -> None:
    assert process_setup.enter_namespaces([("mount", 5)], str) is False


def test_becoming_the_namespaces_root_makes_us_non_dumpable_again(double: RecordingKernel, tmp_path: Path) -> None:
    process_setup.become_namespace_root()
    assert double.calls == [("set_ids", 0, 0), ("set_dumpable", False)]
    failing = RecordingKernel(tmp_path, fail={"set_ids": PermissionError(errno.EINVAL, "Invalid argument")})
    with kernel.use(failing), pytest.raises(SetupError, match=r"is container id 0 mapped"):
        process_setup.become_namespace_root()
    assert steps(failing) == ["set_ids"]


def test_begin_child_in_a_fork(tmp_path: Path) -> None:
    """begin_child closes fds: only in a child (which keeps the one it reports on). Non-dumpable first, then the
    parent death signal (exec's joiner)."""

    def child() -> list[Any]:
        double = RecordingKernel(tmp_path)
        with kernel.use(double):
            keep = {int(name) for name in os.listdir("/proc/self/fd")}
            process_setup.begin_child({}, keep, keep_below=3, parent_pid=os.getppid())
        return [list(call) for call in double.calls]

    result = run_in_child(child)
    assert result == {"ok": [["set_dumpable", False], ["set_parent_death_signal", signal.SIGKILL]]}


def test_the_init_that_leaves_the_wait_to_its_trampoline_keeps_an_effective_gid_of_its_own(
    double: RecordingKernel,
) -> None:
    """become_the_process passes exec_gid down to the user switch (capabilities.switch_user makes it the effective
    and saved gid: the kernel then execs the trampoline non-dumpable)."""
    process_setup.become_the_process({"process": {"args": ["sh"], "user": {"gid": 5}}}, {}, None, None, exec_gid=7)
    assert double.calls == [("apply_user_and_capabilities", {"gid": 5}, None, 7)]


def test_restore_signals_keeps_the_waiting_signals_blocked() -> None:
    """The trampoline that waits for start gets WAIT_SIGNALS blocked (pending, not dropped by pid 1) and every other
    signal unblocked, with Python's ignores and handlers undone; by default nothing stays blocked. In a forked child:
    the test process keeps its own dispositions."""

    def child() -> dict[str, Any]:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # blocked before: unblocked by the call
        process_setup.restore_signals(process_setup.WAIT_SIGNALS)
        blocked = sorted(signal.pthread_sigmask(signal.SIG_BLOCK, set()))
        dispositions = [signal.getsignal(sig) == signal.SIG_DFL for sig in (signal.SIGPIPE, signal.SIGXFSZ)]
        process_setup.restore_signals()
        return {
            "blocked": blocked,
            "defaults": dispositions,
            "after": sorted(signal.pthread_sigmask(signal.SIG_BLOCK, set())),
        }

    result = run_in_child(child)
    assert result == {"ok": {"blocked": sorted(process_setup.WAIT_SIGNALS), "defaults": [True, True], "after": []}}
