"""Per-process attributes from config.json `process` (and `hostname`, `domainname`, linux.personality).

Each function takes the JSON-shaped value as config.json spells it and raises ValueError (bad value) or
OSError (the kernel said no) with the config field named, so the container init's error says what to fix.
All of these act on the calling process (and are inherited across fork and exec).
"""

from __future__ import annotations

import errno
import os

from engine.linux import ffi
from engine.linux.libc import check, libc
from engine.linux.syscalls import PR_GET_PDEATHSIG, PR_SET_PDEATHSIG

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from engine.spec.typed import ExecCPUAffinity, IOPriority, Personality, Rlimit, Scheduler

    # Only for annotations: collections.abc imports collections (~1.5 ms of the child `engine create` forks).
    Warn = Callable[[str], None]


RLIM_INFINITY = (1 << 64) - 1
# getrlimit(2)'s names with asm-generic numbers (x86_64, aarch64, riscv64, ppc64le, s390x). Elsewhere the resource
# module's value wins where it has one, but Python 3.11 lacks RLIMIT_LOCKS, which the spec's "valid values are
# defined in the getrlimit(2) man page" includes.
_GENERIC_RLIMITS = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}
if os.uname().machine in ("x86_64", "aarch64", "ppc64le", "s390x", "riscv64"):  # the architectures engine knows
    RLIMITS = dict(_GENERIC_RLIMITS)  # without the resource module: a shared library to load in every create's child
else:  # alpha, mips, sparc number some differently
    import resource

    RLIMITS = {name: getattr(resource, name, number) for name, number in _GENERIC_RLIMITS.items()}

PER_LINUX = 0x0000
PER_LINUX32 = 0x0008
PERSONALITY_DOMAINS = {"LINUX": PER_LINUX, "LINUX32": PER_LINUX32}

SCHED_POLICIES = {
    "SCHED_OTHER": 0,
    "SCHED_FIFO": 1,
    "SCHED_RR": 2,
    "SCHED_BATCH": 3,
    "SCHED_ISO": 4,  # reserved in linux/sched.h, not implemented by mainline kernels (EINVAL)
    "SCHED_IDLE": 5,
    "SCHED_DEADLINE": 6,
}
SCHED_FLAGS = {
    "SCHED_FLAG_RESET_ON_FORK": 0x01,
    "SCHED_FLAG_RECLAIM": 0x02,
    "SCHED_FLAG_DL_OVERRUN": 0x04,
    "SCHED_FLAG_KEEP_POLICY": 0x08,
    "SCHED_FLAG_KEEP_PARAMS": 0x10,
    "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
    "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40,
}

_UCLAMP_RESET = 0xFFFFFFFF

IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
_IOPRIO_CLASS_SHIFT = 13
_IOPRIO_WHO_PROCESS = 1

# Syscalls glibc 2.36 does not wrap, per machine: sched_setattr, sched_getattr, ioprio_set, ioprio_get.
_SYSCALLS = {
    "x86_64": {"sched_setattr": 314, "sched_getattr": 315, "ioprio_set": 251, "ioprio_get": 252},
    "aarch64": {"sched_setattr": 274, "sched_getattr": 275, "ioprio_set": 30, "ioprio_get": 31},
}


class _RLimit(ffi.Structure):
    _fields_ = [("rlim_cur", ffi.c_uint64), ("rlim_max", ffi.c_uint64)]


class SchedAttr(ffi.Structure):
    """struct sched_attr, SCHED_ATTR_SIZE_VER1 (56 bytes, with the utilization clamps)."""

    _fields_ = [
        ("size", ffi.c_uint32),
        ("sched_policy", ffi.c_uint32),
        ("sched_flags", ffi.c_uint64),
        ("sched_nice", ffi.c_int32),
        ("sched_priority", ffi.c_uint32),
        ("sched_runtime", ffi.c_uint64),
        ("sched_deadline", ffi.c_uint64),
        ("sched_period", ffi.c_uint64),
        ("sched_util_min", ffi.c_uint32),
        ("sched_util_max", ffi.c_uint32),
    ]


libc.prlimit64.argtypes = [ffi.c_int, ffi.c_int, ffi.POINTER(_RLimit), ffi.POINTER(_RLimit)]
libc.personality.argtypes = [ffi.c_ulong]
libc.sethostname.argtypes = [ffi.c_char_p, ffi.c_size_t]
libc.setdomainname.argtypes = [ffi.c_char_p, ffi.c_size_t]
libc.prctl.argtypes = [ffi.c_int, ffi.c_ulong, ffi.c_ulong, ffi.c_ulong, ffi.c_ulong]


def _default_warn(message: str) -> None:
    import warnings  # only on the (rare) warning path

    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _syscall(name: str, *args: Any) -> int:
    machine = os.uname().machine
    try:
        number = _SYSCALLS[machine][name]
    except KeyError:
        raise OSError(errno.ENOSYS, f"{name}: syscall number unknown for {machine}") from None
    libc.syscall.restype = ffi.c_long
    return int(libc.syscall(ffi.c_long(number), *args))


def _int(value: Any, where: str, lo: int | None = None, hi: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{where}: {value} is out of range [{lo}, {hi}]")
    return value


# --- rlimits -------------------------------------------------------------------------------------------


def get_rlimit(name: str) -> tuple[int, int]:
    """(soft, hard) of an RLIMIT_* name, as unsigned 64-bit values (RLIM_INFINITY = 2**64-1)."""
    old = _RLimit()
    check(libc.prlimit64(0, rlimit_number(name), None, ffi.byref(old)), f"getrlimit {name}")
    return old.rlim_cur, old.rlim_max


def rlimit_number(name: str) -> int:
    try:
        return RLIMITS[name]
    except KeyError:
        raise ValueError(f"unknown rlimit type {name!r} (expected one of {sorted(RLIMITS)})") from None


def apply_rlimits(rlimits: Sequence[Rlimit] | None) -> None:
    """config.md `process.rlimits`: setrlimit each {type, soft, hard}, soft and hard as uint64.

    All entries are validated first (unknown type, duplicate type, soft > hard), so a bad entry changes
    nothing. Raising a hard limit above the current one needs CAP_SYS_RESOURCE; without it the kernel
    says EPERM and the error names the rlimit and both values.
    """
    parsed: list[tuple[str, int, int, int]] = []
    seen: set[str] = set()
    for i, entry in enumerate(rlimits or []):
        where = f"process.rlimits[{i}]"
        name = entry.get("type")
        if name not in RLIMITS:
            raise ValueError(f"{where}.type: unknown rlimit {name!r} (expected one of {sorted(RLIMITS)})")
        if name in seen:
            raise ValueError(f"{where}.type: {name} appears more than once")
        seen.add(name)
        soft = _int(entry.get("soft"), f"{where}.soft ({name})", 0, RLIM_INFINITY)
        hard = _int(entry.get("hard"), f"{where}.hard ({name})", 0, RLIM_INFINITY)
        if soft > hard:
            raise ValueError(f"{where}: {name} soft limit {soft} is above its hard limit {hard}")
        parsed.append((name, RLIMITS[name], soft, hard))
    for name, number, soft, hard in parsed:
        new = _RLimit(soft, hard)
        old = _RLimit()
        if libc.prlimit64(0, number, ffi.byref(new), ffi.byref(old)) == 0:
            continue
        err = ffi.get_errno()
        if err == errno.EPERM:
            _, current_hard = get_rlimit(name)
            hint = "needs CAP_SYS_RESOURCE, which this runtime does not have"
            if name == "RLIMIT_NOFILE":
                hint += ", or is above fs.nr_open"
            raise OSError(err, f"process.rlimits: {name}: raising the hard limit from {current_hard} to {hard} {hint}")
        raise OSError(err, f"process.rlimits: {name} soft={soft} hard={hard}: {os.strerror(err)}")


# --- oom score -----------------------------------------------------------------------------------------


def get_oom_score_adj() -> int:
    with open("/proc/self/oom_score_adj", "rb") as f:
        return int(f.read())


def set_oom_score_adj(value: int, write: Callable[[bytes], None] | None = None) -> None:
    """config.md `process.oomScoreAdj` (-1000..1000), written to /proc/self/oom_score_adj, or through
    write(data) (the container's init and exec pass a writer on a procfs they trust: engine.linux.procfs).

    Lowering it below the lowest value a privileged process set needs CAP_SYS_RESOURCE (EACCES).
    """
    value = _int(value, "process.oomScoreAdj", -1000, 1000)
    try:
        if write is not None:
            write(str(value).encode())
        else:
            with open("/proc/self/oom_score_adj", "wb") as f:
                f.write(str(value).encode())
    except OSError as err:
        hint = ""
        if err.errno in (errno.EACCES, errno.EPERM):
            hint = f" (lowering it below {get_oom_score_adj()} needs CAP_SYS_RESOURCE)"
        raise OSError(err.errno, f"process.oomScoreAdj {value}: {err.strerror}{hint}") from None


# --- personality ---------------------------------------------------------------------------------------


def apply_personality(personality: Personality, *, warn: Warn | None = None) -> None:
    """config-linux.md `linux.personality`: domain LINUX or LINUX32 via personality(2).

    The spec supports no flags yet ("Currently no flag values are supported"): like runc, any given are
    warned about and ignored.
    """
    domain = personality.get("domain")
    if domain not in PERSONALITY_DOMAINS:
        raise ValueError(
            f"linux.personality.domain: unknown domain {domain!r} (expected one of {sorted(PERSONALITY_DOMAINS)})"
        )
    flags = personality.get("flags") or []
    if flags:
        (warn or _default_warn)(f"linux.personality.flags: no flags are supported yet; ignoring {flags}")
    check(libc.personality(PERSONALITY_DOMAINS[domain]), f"linux.personality: personality({domain})")


def get_personality() -> int:
    return check(libc.personality(0xFFFFFFFF), "personality(query)")


# --- scheduler -----------------------------------------------------------------------------------------


def sched_attr_from_spec(scheduler: Scheduler) -> SchedAttr:
    """Validate config.md `process.scheduler` (as runc does) and build the struct sched_attr."""
    where = "process.scheduler"
    policy_name = scheduler.get("policy")
    if policy_name not in SCHED_POLICIES:
        raise ValueError(f"{where}.policy: unknown policy {policy_name!r} (expected one of {sorted(SCHED_POLICIES)})")
    nice = _int(scheduler.get("nice", 0), f"{where}.nice", -20, 19)
    priority = _int(scheduler.get("priority", 0), f"{where}.priority", 0, 99)
    if priority and policy_name not in ("SCHED_FIFO", "SCHED_RR"):
        raise ValueError(f"{where}.priority can only be set for SCHED_FIFO or SCHED_RR, not {policy_name}")
    if policy_name in ("SCHED_FIFO", "SCHED_RR") and priority == 0:
        raise ValueError(f"{where}.priority: {policy_name} needs a priority of 1..99")
    runtime = _int(scheduler.get("runtime", 0), f"{where}.runtime", 0, (1 << 64) - 1)
    deadline = _int(scheduler.get("deadline", 0), f"{where}.deadline", 0, (1 << 64) - 1)
    period = _int(scheduler.get("period", 0), f"{where}.period", 0, (1 << 64) - 1)
    if policy_name != "SCHED_DEADLINE" and (runtime or deadline or period):
        raise ValueError(f"{where}: runtime/deadline/period can only be set for SCHED_DEADLINE")
    flags = 0
    for flag in scheduler.get("flags") or []:
        if flag not in SCHED_FLAGS:
            raise ValueError(f"{where}.flags: unknown flag {flag!r} (expected one of {sorted(SCHED_FLAGS)})")
        flags |= SCHED_FLAGS[flag]
    return SchedAttr(
        size=ffi.sizeof(SchedAttr),
        sched_policy=SCHED_POLICIES[policy_name],
        sched_flags=flags,
        sched_nice=nice,
        sched_priority=priority,
        sched_runtime=runtime,
        sched_deadline=deadline,
        sched_period=period,
        # The spec has no clamp values: with a UTIL_CLAMP flag, -1 asks the kernel for its default clamp
        # (0 for max would throttle the task to nothing).
        sched_util_min=_UCLAMP_RESET if flags & SCHED_FLAGS["SCHED_FLAG_UTIL_CLAMP_MIN"] else 0,
        sched_util_max=_UCLAMP_RESET if flags & SCHED_FLAGS["SCHED_FLAG_UTIL_CLAMP_MAX"] else 0,
    )


def apply_scheduler(scheduler: Scheduler) -> None:
    """config.md `process.scheduler` via sched_setattr(2) on this process."""
    attr = sched_attr_from_spec(scheduler)
    if _syscall("sched_setattr", ffi.c_int(0), ffi.byref(attr), ffi.c_uint(0)) == 0:
        return
    err = ffi.get_errno()
    policy = scheduler.get("policy")
    hints = {
        errno.EPERM: "needs CAP_SYS_NICE; SCHED_DEADLINE also needs the CPU affinity to span all CPUs",
        errno.EINVAL: "the kernel rejects this policy or its parameters (SCHED_ISO is not implemented; "
        "SCHED_DEADLINE needs 1024 <= runtime <= deadline <= period)",
        errno.EBUSY: "SCHED_DEADLINE admission control: not enough CPU bandwidth left",
        errno.EOPNOTSUPP: "utilization clamping is not supported by this kernel",
    }
    hint = f" ({hints[err]})" if err in hints else ""
    raise OSError(err, f"process.scheduler: sched_setattr({policy}): {os.strerror(err)}{hint}")


def get_scheduler() -> SchedAttr:
    """sched_getattr(2) for this process."""
    attr = SchedAttr()
    result = _syscall("sched_getattr", ffi.c_int(0), ffi.byref(attr), ffi.c_uint(ffi.sizeof(attr)), 0)
    check(result, "sched_getattr")
    return attr


# --- I/O priority --------------------------------------------------------------------------------------


def apply_io_priority(io_priority: IOPriority) -> None:
    """config.md `process.ioPriority` {class, priority 0..7} via ioprio_set(IOPRIO_WHO_PROCESS, 0).

    Like runc, it is set on the container process; every process it forks inherits it.
    """
    cls = io_priority.get("class")
    if cls not in IOPRIO_CLASSES:
        raise ValueError(f"process.ioPriority.class: unknown class {cls!r} (expected one of {sorted(IOPRIO_CLASSES)})")
    level = _int(io_priority.get("priority", 0), "process.ioPriority.priority", 0, 7)
    value = IOPRIO_CLASSES[cls] << _IOPRIO_CLASS_SHIFT | level
    result = _syscall("ioprio_set", ffi.c_int(_IOPRIO_WHO_PROCESS), ffi.c_int(0), ffi.c_int(value))
    if result == -1:
        err = ffi.get_errno()
        hint = " (IOPRIO_CLASS_RT needs CAP_SYS_NICE or CAP_SYS_ADMIN)" if err == errno.EPERM else ""
        raise OSError(err, f"process.ioPriority: ioprio_set({cls}, {level}): {os.strerror(err)}{hint}")


def get_io_priority() -> tuple[str | None, int]:
    """(class name, level) of this process; class None means 'none' (derived from the nice value)."""
    value = check(_syscall("ioprio_get", ffi.c_int(_IOPRIO_WHO_PROCESS), ffi.c_int(0)), "ioprio_get")
    cls = value >> _IOPRIO_CLASS_SHIFT
    names = {number: name for name, number in IOPRIO_CLASSES.items()}
    return names.get(cls), value & ((1 << _IOPRIO_CLASS_SHIFT) - 1)


# --- CPU affinity --------------------------------------------------------------------------------------


def parse_cpu_list(text: str, where: str = "cpu list") -> set[int]:
    """'0-3,7' -> {0, 1, 2, 3, 7} (the kernel's cpu list format, as in cpuset.cpus)."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        first, sep, last = part.partition("-")
        try:
            lo = int(first)
            hi = int(last) if sep else lo
        except ValueError:
            raise ValueError(f"{where}: {part!r} is not a CPU number or range in {text!r}") from None
        if lo < 0 or hi < lo:
            raise ValueError(f"{where}: invalid CPU range {part!r} in {text!r}")
        if hi >= 8192:  # CONFIG_NR_CPUS is at most 8192
            raise ValueError(f"{where}: CPU {hi} is above the kernel's limit in {text!r}")
        cpus.update(range(lo, hi + 1))
    return cpus


def apply_exec_cpu_affinity(spec: ExecCPUAffinity | None, *, initial: bool) -> None:
    """config.md `process.execCPUAffinity`: sched_setaffinity to `initial` (before joining the container's
    cgroup) or `final` (after). An absent or empty list leaves the affinity alone, as the spec says.
    Not for the container's init process (the spec: "not applicable to the container's init process").
    """
    key = "initial" if initial else "final"
    text = (spec.get("initial") if initial else spec.get("final")) if spec else None
    if not text:
        return
    where = f"process.execCPUAffinity.{key}"
    cpus = parse_cpu_list(text, where)
    if not cpus:
        return
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as err:
        raise OSError(err.errno, f"{where} {text!r}: sched_setaffinity: {err.strerror}") from None


# --- UTS names, parent death signal, umask -------------------------------------------------------------


def set_hostname(name: str) -> None:
    """config.md `hostname` (needs a UTS namespace of our own; at most 64 bytes)."""
    raw = name.encode()
    if len(raw) > 64:
        raise ValueError(f"hostname {name!r} is longer than 64 bytes")
    check(libc.sethostname(raw, len(raw)), f"hostname {name!r}: sethostname")


def set_domainname(name: str) -> None:
    """config.md `domainname` (needs a UTS namespace of our own; at most 64 bytes)."""
    raw = name.encode()
    if len(raw) > 64:
        raise ValueError(f"domainname {name!r} is longer than 64 bytes")
    check(libc.setdomainname(raw, len(raw)), f"domainname {name!r}: setdomainname")


def set_parent_death_signal(sig: int | str) -> None:
    """prctl(PR_SET_PDEATHSIG): `sig` (number or name like 'SIGKILL') when the parent thread dies.

    The kernel clears it on any uid/gid change and on exec of a setuid binary; capabilities'
    apply_user_and_capabilities restores it after switching user.
    """
    if isinstance(sig, str):
        import signal  # only when given by name

        try:
            sig = int(getattr(signal, sig if sig.startswith("SIG") else f"SIG{sig}"))
        except AttributeError:
            raise ValueError(f"unknown signal {sig!r}") from None
    sig = _int(sig, "parent death signal", 0, 64)
    check(libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


def get_parent_death_signal() -> int:
    value = ffi.c_int(0)
    check(libc.prctl(PR_GET_PDEATHSIG, ffi.addressof(value), 0, 0, 0), "prctl(PR_GET_PDEATHSIG)")
    return value.value


def set_umask(mask: int) -> int:
    """config.md `process.user.umask`; returns the previous umask."""
    return os.umask(_int(mask, "process.user.umask", 0, 0o777))
