"""engine.linux.process_attrs: validation, and each attribute applied for real in a forked child."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
from typing import Any

import pytest

from engine.linux import process_attrs as pa
from tests.forked import CAP_SYS_RESOURCE, drop_capability, run_in_child

ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


# --- rlimits -------------------------------------------------------------------------------------------


def test_rlimit_names_come_from_the_resource_module() -> None:
    assert pa.RLIMITS["RLIMIT_NOFILE"] == resource.RLIMIT_NOFILE
    assert pa.RLIMITS["RLIMIT_MSGQUEUE"] == resource.RLIMIT_MSGQUEUE
    assert len(pa.RLIMITS) == 16
    assert pa.RLIMITS["RLIMIT_LOCKS"] == 10  # not in Python 3.11's resource module


@pytest.mark.parametrize(
    ("rlimits", "message"),
    [
        ([{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}], "unknown rlimit 'RLIMIT_FOO'"),
        ([{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}] * 2, r"rlimits\[1\].*RLIMIT_CORE appears more than once"),
        ([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}], "RLIMIT_NOFILE soft limit 10 is above its hard limit 5"),
        ([{"type": "RLIMIT_NOFILE", "soft": -1, "hard": 5}], r"soft \(RLIMIT_NOFILE\)"),
        ([{"type": "RLIMIT_NOFILE", "soft": 1}], r"hard \(RLIMIT_NOFILE\)"),
    ],
)
def test_bad_rlimits_are_rejected_before_anything_changes(rlimits: list[dict[str, Any]], message: str) -> None:
    before = resource.getrlimit(resource.RLIMIT_CORE)
    with pytest.raises(ValueError, match=message):
        pa.apply_rlimits(rlimits)
    assert resource.getrlimit(resource.RLIMIT_CORE) == before


def test_rlimits_are_applied_and_read_back() -> None:
    def child() -> dict[str, Any]:
        pa.apply_rlimits(
            [
                {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                {"type": "RLIMIT_CPU", "soft": 100, "hard": pa.RLIM_INFINITY},
                {"type": "RLIMIT_LOCKS", "soft": 30, "hard": 40},
            ]
        )
        with open("/proc/self/limits") as f:
            limits = f.read()
        return {
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
            "core": pa.get_rlimit("RLIMIT_CORE"),
            "cpu": pa.get_rlimit("RLIMIT_CPU"),
            "locks": pa.get_rlimit("RLIMIT_LOCKS"),
            "limits": limits,
        }

    out = run_in_child(child)
    assert "ok" in out, out
    assert out["ok"]["nofile"] == [512, 1024]
    assert out["ok"]["core"] == [0, 0]
    assert out["ok"]["cpu"] == [100, pa.RLIM_INFINITY]
    assert out["ok"]["locks"] == [30, 40]
    assert "Max open files            512                  1024" in out["ok"]["limits"]


@ROOT
@ROOT
def test_raising_a_hard_limit_without_cap_sys_resource_names_the_rlimit() -> None:
    def child() -> None:
        drop_capability(CAP_SYS_RESOURCE)  # whether or not this machine's root has it
        pa.apply_rlimits([{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 128}])
        pa.apply_rlimits([{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 256}])

    out = run_in_child(child)
    assert out["errno"] == errno.EPERM
    assert "RLIMIT_NOFILE" in out["error"] and "128 to 256" in out["error"] and "CAP_SYS_RESOURCE" in out["error"]


# --- oom score -----------------------------------------------------------------------------------------


def test_oom_score_adj_is_set_and_read_back() -> None:
    def child() -> list[int]:
        pa.set_oom_score_adj(500)
        first = pa.get_oom_score_adj()
        pa.set_oom_score_adj(250)  # down again, but not below where we started
        return [first, pa.get_oom_score_adj()]

    assert run_in_child(child)["ok"] == [500, 250]


def test_oom_score_adj_range() -> None:
    with pytest.raises(ValueError, match="oomScoreAdj"):
        pa.set_oom_score_adj(1001)
    with pytest.raises(ValueError, match="oomScoreAdj"):
        pa.set_oom_score_adj("5")  # type: ignore[arg-type]


@ROOT
@ROOT
def test_lowering_oom_score_adj_without_cap_sys_resource_is_a_clear_error() -> None:
    def child() -> None:
        drop_capability(CAP_SYS_RESOURCE)  # whether or not this machine's root has it
        pa.set_oom_score_adj(pa.get_oom_score_adj() - 100)

    out = run_in_child(child)
    assert out["errno"] == errno.EACCES and "CAP_SYS_RESOURCE" in out["error"]


# --- personality ---------------------------------------------------------------------------------------


def test_personality_linux32_makes_uname_say_i686() -> None:
    if os.uname().machine != "x86_64":
        pytest.skip(f"this host is {os.uname().machine}, not x86_64 (where LINUX32 shows i686)")

    def child() -> dict[str, Any]:
        pa.apply_personality({"domain": "LINUX32"})
        uname_m = subprocess.run(["uname", "-m"], capture_output=True, text=True, check=True).stdout.strip()
        linux32 = {"python": os.uname().machine, "uname -m": uname_m, "persona": pa.get_personality()}
        pa.apply_personality({"domain": "LINUX"})
        return {"linux32": linux32, "linux": os.uname().machine}

    out = run_in_child(child)
    assert "ok" in out, out
    assert out["ok"]["linux32"] == {"python": "i686", "uname -m": "i686", "persona": pa.PER_LINUX32}
    assert out["ok"]["linux"] == "x86_64"


def test_personality_validation_and_flags() -> None:
    with pytest.raises(ValueError, match=r"linux\.personality\.domain.*'BSD'"):
        pa.apply_personality({"domain": "BSD"})

    def child() -> list[str]:
        warnings: list[str] = []
        pa.apply_personality({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}, warn=warnings.append)
        return warnings

    assert "ADDR_NO_RANDOMIZE" in run_in_child(child)["ok"][0]


# --- scheduler -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheduler", "message"),
    [
        ({"policy": "SCHED_FAST"}, "unknown policy 'SCHED_FAST'"),
        ({"policy": "SCHED_OTHER", "nice": 20}, r"scheduler\.nice"),
        ({"policy": "SCHED_OTHER", "priority": 5}, "only be set for SCHED_FIFO or SCHED_RR"),
        ({"policy": "SCHED_FIFO"}, "needs a priority of 1..99"),
        ({"policy": "SCHED_BATCH", "runtime": 10}, "only be set for SCHED_DEADLINE"),
        ({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_TURBO"]}, "unknown flag 'SCHED_FLAG_TURBO'"),
    ],
)
def test_scheduler_validation(scheduler: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pa.sched_attr_from_spec(scheduler)


def test_sched_attr_layout() -> None:
    attr = pa.sched_attr_from_spec({"policy": "SCHED_OTHER", "nice": 3, "flags": ["SCHED_FLAG_RESET_ON_FORK"]})
    assert attr.size == 56 and attr.sched_policy == 0 and attr.sched_nice == 3 and attr.sched_flags == 1


@ROOT
@pytest.mark.parametrize(
    ("scheduler", "policy", "nice", "priority"),
    [
        ({"policy": "SCHED_BATCH", "nice": 5}, os.SCHED_BATCH, 5, 0),
        ({"policy": "SCHED_IDLE"}, os.SCHED_IDLE, 0, 0),
        ({"policy": "SCHED_OTHER", "nice": 7}, os.SCHED_OTHER, 7, 0),
        ({"policy": "SCHED_FIFO", "priority": 10}, os.SCHED_FIFO, 0, 10),
        ({"policy": "SCHED_RR", "priority": 3}, os.SCHED_RR, 0, 3),
    ],
)
def test_scheduler_is_applied_and_read_back(scheduler: dict[str, Any], policy: int, nice: int, priority: int) -> None:
    def child() -> dict[str, int]:
        pa.apply_scheduler(scheduler)
        attr = pa.get_scheduler()
        return {
            "policy": os.sched_getscheduler(0),
            "priority": os.sched_getparam(0).sched_priority,
            "nice": attr.sched_nice,
        }

    out = run_in_child(child)
    assert "ok" in out, out
    assert out["ok"]["policy"] == policy and out["ok"]["priority"] == priority
    if policy in (os.SCHED_OTHER, os.SCHED_BATCH):
        assert out["ok"]["nice"] == nice


@ROOT
def test_deadline_scheduler_and_reset_on_fork() -> None:
    def child() -> dict[str, int]:
        pa.apply_scheduler(
            {
                "policy": "SCHED_DEADLINE",
                "runtime": 1_000_000,
                "deadline": 10_000_000,
                "period": 10_000_000,
                "flags": ["SCHED_FLAG_RESET_ON_FORK"],
            }
        )
        attr = pa.get_scheduler()
        return {"policy": attr.sched_policy, "runtime": attr.sched_runtime, "flags": attr.sched_flags}

    out = run_in_child(child)
    assert "ok" in out, out
    assert out["ok"]["policy"] == 6 and out["ok"]["runtime"] == 1_000_000
    assert out["ok"]["flags"] & 0x01


@ROOT
def test_sched_iso_is_refused_by_the_kernel_with_a_clear_error() -> None:
    out = run_in_child(lambda: pa.apply_scheduler({"policy": "SCHED_ISO"}))
    assert out["errno"] == errno.EINVAL and "SCHED_ISO" in out["error"]


# --- I/O priority --------------------------------------------------------------------------------------


@ROOT
@pytest.mark.parametrize(
    ("cls", "level"), [("IOPRIO_CLASS_BE", 3), ("IOPRIO_CLASS_RT", 1), ("IOPRIO_CLASS_IDLE", 0), ("IOPRIO_CLASS_BE", 7)]
)
def test_io_priority_is_applied_and_read_back(cls: str, level: int) -> None:
    out = run_in_child(lambda: (pa.apply_io_priority({"class": cls, "priority": level}), pa.get_io_priority())[1])
    assert out["ok"] == [cls, level]


def test_io_priority_validation() -> None:
    with pytest.raises(ValueError, match="IOPRIO_CLASS_FAST"):
        pa.apply_io_priority({"class": "IOPRIO_CLASS_FAST", "priority": 0})
    with pytest.raises(ValueError, match=r"ioPriority\.priority"):
        pa.apply_io_priority({"class": "IOPRIO_CLASS_BE", "priority": 8})


# --- CPU affinity --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("0", {0}), ("0-3,7", {0, 1, 2, 3, 7}), (" 1 , 3-4 ", {1, 3, 4}), ("", set()), ("2-2", {2})],
)
def test_parse_cpu_list(text: str, cpus: set[int]) -> None:
    assert pa.parse_cpu_list(text) == cpus


@pytest.mark.parametrize("text", ["a", "3-1", "1-", "-1", "0-99999", "1,,x"])
def test_parse_cpu_list_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"execCPUAffinity\.initial"):
        pa.parse_cpu_list(text, "process.execCPUAffinity.initial")


def test_exec_cpu_affinity_initial_then_final() -> None:
    all_cpus = os.sched_getaffinity(0)

    def child() -> dict[str, list[int]]:
        spec = {"initial": "0", "final": ",".join(str(c) for c in sorted(all_cpus))}
        pa.apply_exec_cpu_affinity(spec, initial=True)
        initial = sorted(os.sched_getaffinity(0))
        pa.apply_exec_cpu_affinity(spec, initial=False)
        final = sorted(os.sched_getaffinity(0))
        pa.apply_exec_cpu_affinity({"initial": "0"}, initial=False)  # no final: unchanged
        pa.apply_exec_cpu_affinity(None, initial=True)
        return {"initial": initial, "final": final, "untouched": sorted(os.sched_getaffinity(0))}

    out = run_in_child(child)
    assert out["ok"] == {"initial": [0], "final": sorted(all_cpus), "untouched": sorted(all_cpus)}


# --- UTS names, parent death signal, umask -------------------------------------------------------------


@ROOT
def test_hostname_and_domainname_in_a_new_uts_namespace() -> None:
    from engine.linux import syscalls

    def child() -> dict[str, str]:
        syscalls.unshare(syscalls.CLONE_NEWUTS)
        pa.set_hostname("engine-box")
        pa.set_domainname("example.test")
        with open("/proc/sys/kernel/domainname") as f:
            domain = f.read().strip()
        return {"hostname": os.uname().nodename, "domainname": domain}

    host_before = os.uname().nodename
    assert run_in_child(child)["ok"] == {"hostname": "engine-box", "domainname": "example.test"}
    assert os.uname().nodename == host_before
    with pytest.raises(ValueError, match="longer than 64"):
        pa.set_hostname("x" * 65)


def test_parent_death_signal_by_number_and_name() -> None:
    def child() -> list[int]:
        pa.set_parent_death_signal("SIGKILL")
        first = pa.get_parent_death_signal()
        pa.set_parent_death_signal(signal.SIGTERM)
        return [first, pa.get_parent_death_signal()]

    assert run_in_child(child)["ok"] == [signal.SIGKILL, signal.SIGTERM]
    with pytest.raises(ValueError, match="SIGNOPE"):
        pa.set_parent_death_signal("SIGNOPE")


def test_umask() -> None:
    def child() -> list[int]:
        pa.set_umask(0o027)
        return [os.umask(0o022)]

    assert run_in_child(child)["ok"] == [0o027]
    with pytest.raises(ValueError, match="umask"):
        pa.set_umask(0o1000)
