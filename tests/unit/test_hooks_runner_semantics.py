"""hooks.runner: config.md "POSIX-platform Hooks" semantics, timeouts that kill the whole group, messages."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from hooks.runner import HookError, fold_output, run_hook, run_hooks

SH = "/bin/sh"
STATE = b'{"ociVersion":"1.3.0","id":"c1","status":"creating","pid":42,"bundle":"/b"}'


def sh(script: str, **extra: object) -> dict:
    return {"path": SH, "args": ["sh", "-c", script], **extra}


def gone(pid: int, within: float = 3.0) -> bool:
    """The process no longer runs: absent, or a zombie waiting for a reaper that is not us."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return True
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def test_stdin_gets_the_state(tmp_path: Path) -> None:
    out = tmp_path / "stdin"
    run_hook(sh(f"cat > {out}"), STATE, stage="createRuntime")
    assert out.read_bytes() == STATE


def test_large_state_is_written_whole_and_an_unread_one_does_not_block(tmp_path: Path) -> None:
    big = b'{"annotations":{"a":"' + b"x" * (1 << 20) + b'"}}'
    out = tmp_path / "stdin"
    run_hook(sh(f"cat > {out}"), big, stage="prestart")
    assert out.read_bytes() == big
    start = time.monotonic()
    run_hook(sh("exit 0"), big, stage="prestart")  # never reads stdin: EPIPE is not a failure
    assert time.monotonic() - start < 2


def test_args_are_the_whole_argv_including_argv0(tmp_path: Path) -> None:
    out = tmp_path / "cmdline"
    run_hook(
        {"path": SH, "args": ["not-sh", "-c", f"cat /proc/$$/cmdline > {out}", "zero", "one"]},
        STATE,
        stage="createRuntime",
    )
    assert out.read_bytes().split(b"\0")[:-1] == [
        b"not-sh",
        b"-c",
        f"cat /proc/$$/cmdline > {out}".encode(),
        b"zero",
        b"one",
    ]


def test_without_args_argv_is_the_path(tmp_path: Path) -> None:
    # sh without arguments runs its stdin: the "state" here is a script that records $0.
    out = tmp_path / "argv0"
    run_hook({"path": SH}, f'printf %s "$0" > {out}\n'.encode(), stage="poststop")
    assert out.read_text() == SH
    run_hook({"path": SH, "args": []}, f'printf %s "$0" > {out}\n'.encode(), stage="poststop")
    assert out.read_text() == SH


def test_env_replaces_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAKED_FROM_RUNTIME", "1")
    out = tmp_path / "environ"
    run_hook(sh(f"cat /proc/$$/environ > {out}", env=["A=1", "B=x=y"]), STATE, stage="prestart")
    assert out.read_bytes() == b"A=1\0B=x=y\0"
    run_hook(sh(f"cat /proc/$$/environ > {out}"), STATE, stage="prestart")
    assert out.read_bytes() == b""


def test_hooks_run_in_order(tmp_path: Path) -> None:
    out = tmp_path / "order"
    hooks = [sh(f"printf {n} >> {out}") for n in "123"]
    run_hooks("poststart", hooks, STATE, warn_only=False, warn=pytest.fail)
    assert out.read_text() == "123"


def test_first_failure_stops_the_stage(tmp_path: Path) -> None:
    out = tmp_path / "ran"
    hooks = [sh(f"echo a >> {out}"), sh("echo broken >&2; exit 4"), sh(f"echo c >> {out}")]
    with pytest.raises(HookError) as info:
        run_hooks("createRuntime", hooks, STATE, warn_only=False, warn=pytest.fail)
    assert out.read_text() == "a\n"
    assert str(info.value) == "createRuntime hook[1] /bin/sh: exited with status 4; output: broken"
    assert info.value.exit_status == 4
    assert info.value.stage == "createRuntime"


def test_warn_only_warns_and_keeps_going(tmp_path: Path) -> None:
    out = tmp_path / "ran"
    warnings: list[str] = []
    hooks = [sh("exit 1"), sh(f"echo b >> {out}"), {"path": "/nonexistent/hook"}, sh(f"echo d >> {out}")]
    run_hooks("poststop", hooks, STATE, warn_only=True, warn=warnings.append)
    assert out.read_text() == "b\nd\n"
    assert warnings == [
        "poststop hook[0] /bin/sh: exited with status 1",
        "poststop hook[2] /nonexistent/hook: cannot execute: No such file or directory",
    ]


def test_no_hooks_is_fine() -> None:
    run_hooks("prestart", None, STATE, warn_only=False, warn=pytest.fail)
    run_hooks("prestart", [], STATE, warn_only=False, warn=pytest.fail)


def test_timeout_kills_the_whole_group_grandchild_included(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # The hook starts a grandchild in its group, then both sleep far past the timeout.
    hook = sh(f"sleep 60 & echo $! > {pids}; echo started >&2; sleep 60", timeout=1)
    start = time.monotonic()
    with pytest.raises(HookError) as info:
        run_hook(hook, STATE, stage="createContainer")
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 2.5, elapsed
    err = info.value
    assert err.timed_out
    assert str(err) == (
        "createContainer hook /bin/sh: timed out after 1s (its process group was killed); output: started"
    )
    grandchild = int(pids.read_text())
    assert gone(grandchild), f"grandchild {grandchild} survived the timeout"


def test_a_grandchild_holding_the_output_pipe_does_not_hold_the_runtime(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    start = time.monotonic()
    run_hook(sh(f"sleep 30 & echo $! > {pids}; exit 0"), STATE, stage="poststart")
    assert time.monotonic() - start < 1.5
    os.kill(int(pids.read_text()), signal.SIGKILL)  # a hook's daemon outlives it by design; not in a test


def test_failure_message_names_stage_path_status_and_output() -> None:
    with pytest.raises(HookError) as info:
        run_hook(
            sh("echo 'first line' >&2; echo; printf 'tab\\there\\n' >&2; echo on-stdout; exit 3"),
            STATE,
            stage="startContainer",
        )
    message = str(info.value)
    assert message == ("startContainer hook /bin/sh: exited with status 3; output: first line | tab here | on-stdout")


def test_failure_message_is_one_bounded_line_with_the_tail() -> None:
    script = "i=0; while [ $i -lt 3000 ]; do echo line $i >&2; i=$((i+1)); done; echo THE-CAUSE >&2; exit 1"
    with pytest.raises(HookError) as info:
        run_hook(sh(script), STATE, stage="prestart")
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 500
    assert message.endswith("THE-CAUSE")
    assert len(info.value.output) <= 64 * 1024


def test_signal_death() -> None:
    with pytest.raises(HookError) as info:
        run_hook(sh("kill -KILL $$"), STATE, stage="poststop")
    assert str(info.value) == "poststop hook /bin/sh: killed by signal SIGKILL"
    assert info.value.signal_number == signal.SIGKILL


def test_exec_failures(tmp_path: Path) -> None:
    with pytest.raises(HookError, match=r"^prestart hook /nonexistent: cannot execute: No such file"):
        run_hook({"path": "/nonexistent"}, STATE, stage="prestart")
    not_executable = tmp_path / "hook"
    not_executable.write_text("#!/bin/sh\n")
    with pytest.raises(HookError, match="cannot execute: Permission denied"):
        run_hook({"path": str(not_executable)}, STATE, stage="prestart")


@pytest.mark.parametrize(
    ("hook", "reason"),
    [
        ({"path": "bin/sh"}, '"path" must be absolute'),
        ({}, '"path" is required'),
        ("/bin/sh", "expected an object, got str"),
        ({"path": SH, "args": "sh -c true"}, '"args" must be an array of strings'),
        ({"path": SH, "env": ["NOEQUALS"]}, "\"env\" entry 'NOEQUALS' is not NAME=VALUE"),
        ({"path": SH, "timeout": 0}, '"timeout" must be a number greater than zero, got 0'),
        ({"path": SH, "timeout": -1}, "greater than zero"),
        ({"path": SH, "timeout": "5"}, "greater than zero"),
        ({"path": SH, "timeout": True}, "greater than zero"),
    ],
)
def test_invalid_hooks(hook: object, reason: str) -> None:
    with pytest.raises(HookError, match="invalid hook") as info:
        run_hook(hook, STATE, stage="createRuntime")  # type: ignore[arg-type]
    assert str(info.value).startswith("createRuntime hook")
    assert reason in str(info.value)


def test_nothing_reaches_the_runtime_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    run_hook(sh("echo to-stdout; echo to-stderr >&2"), STATE, stage="poststart")
    with pytest.raises(HookError):
        run_hook(sh("echo to-stdout; echo to-stderr >&2; exit 1"), STATE, stage="poststart")
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_the_hook_gets_only_stdio_default_signals_and_an_empty_mask(tmp_path: Path) -> None:
    leaked_r, leaked_w = os.pipe()
    os.set_inheritable(leaked_w, True)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    old_usr2 = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    out = tmp_path / "out"
    try:
        run_hook(
            sh(
                f"[ -e /proc/$$/fd/{leaked_w} ] && echo open > {out} || echo closed > {out}; "
                # Builtins only: while dash forks a command it blocks every signal, and a child reading
                # /proc/<sh>/status could catch it in that moment.
                f'while read -r line; do case $line in Sig[BI]*) echo "$line";; esac; done '
                f"< /proc/$$/status >> {out}"
            ),
            STATE,
            stage="prestart",
        )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        signal.signal(signal.SIGUSR2, old_usr2)
        os.close(leaked_r)
        os.close(leaked_w)
    lines = out.read_text().split("\n")
    assert lines[0] == "closed"
    assert lines[1] == "SigBlk:\t0000000000000000", lines
    # Python ignores SIGPIPE and we ignore SIGUSR2 here: neither reaches the hook. glibc's posix_spawn keeps its
    # two internal signals (32, 33: bits 31 and 32) ignored; nothing else may be.
    assert int(lines[2].split("\t")[1], 16) & ~0x180000000 == 0


def test_runs_from_a_forked_child_without_threads(tmp_path: Path) -> None:
    out = tmp_path / "out"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            run_hook(sh(f"cat > {out}"), STATE, stage="createContainer")
            try:
                run_hook(sh("sleep 30", timeout=0.2), STATE, stage="createContainer")
            except HookError as err:
                code = 0 if err.timed_out else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert out.read_bytes() == STATE


def test_fold_output() -> None:
    assert fold_output(b"  a \n\n b\r\n\tc\x00d ") == "a | b | c d"
    assert fold_output(b"\xff oops") == "\ufffd oops"
    assert fold_output(b"x" * 1000, limit=10) == "..." + "x" * 7


def test_python_hook_via_sys_executable(tmp_path: Path) -> None:
    out = tmp_path / "argv"
    code = f"import sys; open({str(out)!r}, 'w').write(repr(sys.argv))"
    run_hook({"path": sys.executable, "args": ["python3", "-c", code, "x"]}, STATE, stage="poststart")
    assert out.read_text() == "['-c', 'x']"


def test_works_when_the_runtime_has_its_stdio_closed(tmp_path: Path) -> None:
    # A daemonised caller may run with fds 0-2 closed: the hook's pipes then land on 0-2 in the caller, and
    # dup2-ing them onto the child's stdio must not clobber one another.
    out = tmp_path / "stdin"
    result = tmp_path / "result"
    code = (
        "import os, sys\n"
        "for fd in (0, 1, 2): os.close(fd)\n"
        "from hooks.runner import run_hook\n"
        f"run_hook({{'path': '/bin/sh', 'args': ['sh', '-c', 'cat > {out}; echo err >&2']}}, b'STATE', stage='x')\n"
        f"open({str(result)!r}, 'w').write('ok')\n"
    )
    repo = Path(__file__).resolve().parents[2]
    pid = os.posix_spawn(sys.executable, [sys.executable, "-c", code], {"PYTHONPATH": str(repo)})
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert result.read_text() == "ok"
    assert out.read_bytes() == b"STATE"
