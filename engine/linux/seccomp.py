"""config-linux.md "Seccomp": build a filter with the system's libseccomp (ctypes) and load it.

Why ctypes over libseccomp.so.2 and not a Python package: see docs/seccomp.md. In short: nothing to compile,
the distribution's library (and its syscall tables) is used, and the API surface needed is a dozen calls.
The library is opened on first use, not at import, so importing this module costs nothing.

Semantics follow runc (libcontainer/seccomp and specconv), which is what config.json writers expect:
- `SCMP_ACT_KILL` is libseccomp's KILL, i.e. KILL_THREAD; `errnoRet` defaults to EPERM for ERRNO and TRACE,
  and is an error on any other action (config-linux.md: "the runtime MUST print and error and fail").
- a syscall name libseccomp does not know is skipped (an older library or another architecture's call),
  never an error, so one profile serves every kernel.
- a rule whose action equals the default action is skipped (libseccomp rejects it, and it changes nothing).
- several `args` on the same index are added as separate rules, i.e. OR-ed, because a libseccomp rule
  can only AND comparisons on distinct arguments. Args on distinct indexes form one AND-ed rule.
- `flags` absent (not empty) means SECCOMP_FILTER_FLAG_SPEC_ALLOW when the library supports it.
- SCMP_ACT_NOTIFY is refused as the default action and on `write`: the runtime itself must still be able
  to run (and write) after the filter is loaded to hand the notify fd on.
- the filter never sets no_new_privs itself (libseccomp's default would); process.noNewPrivileges does.
  Without no_new_privs, loading needs CAP_SYS_ADMIN: load the filter before capabilities are dropped
  when noNewPrivileges is false, and as late as possible (just before exec) when it is true.
- syscalls newer than the profile get ENOSYS, not the default action: runc's stub in front of the filter
  (engine/linux/seccomp_enosys.py); the program is then loaded with seccomp(2) by us, not by libseccomp.
"""

from __future__ import annotations

import errno
import os

from engine.linux import ffi, seccomp_enosys
from engine.linux.libc import libc
from engine.record import field, record

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from engine.spec.typed import Seccomp

    # Only for annotations: collections.abc imports collections (~1.5 ms of the child `engine create` forks).
    Warn = Callable[[str], None]


# seccomp.h actions (libseccomp values; the kernel's SECCOMP_RET_* in a different encoding for KILL).
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000  # | (errno & 0xffff)
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000  # | (msg & 0xffff)
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
    "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_NOTIFY": ACT_NOTIFY,
}
_ACTIONS_WITH_ERRNO = {"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"}

# enum scmp_compare.
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# The spec's architecture names (libseccomp 2.6) are the models' list, read from its compiled form
# (engine.spec.constants would import typing, ~4 ms of every create). libseccomp names each one by the lowercased
# suffix, which seccomp_arch_resolve_name() turns into the AUDIT_ARCH token.


def spec_architectures() -> tuple[str, ...]:
    """The architectures config.json may name. Imported on first use, not with this module: `exec` without a
    profile never loads the validator, and the callers run before pivot_root (create has it loaded already)."""
    from engine.spec.compiled import SECCOMP_ARCHS

    return SECCOMP_ARCHS


# seccomp(2) filter flags.
SECCOMP_FILTER_FLAG_TSYNC = 1 << 0
SECCOMP_FILTER_FLAG_LOG = 1 << 1
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 1 << 4
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5
FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": SECCOMP_FILTER_FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": SECCOMP_FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
}

# enum scmp_filter_attr.
_ATTR_CTL_NNP = 3
_ATTR_CTL_TSYNC = 4
_ATTR_CTL_LOG = 6
_ATTR_CTL_SSB = 7
_ATTR_CTL_OPTIMIZE = 8
_ATTR_API_SYSRAWRC = 9
_ATTR_CTL_WAITKILL = 10  # libseccomp >= 2.6
_FLAG_ATTRS = {
    "SECCOMP_FILTER_FLAG_TSYNC": _ATTR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": _ATTR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _ATTR_CTL_SSB,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": _ATTR_CTL_WAITKILL,
}
# The libseccomp API level each flag's attribute needs (seccomp_api_get(3)).
_FLAG_API_LEVEL = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 3,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 7,
}
_NOTIFY_API_LEVEL = 6

_SYSCALL_MAX_ARGS = 6
_NR_SCMP_ERROR = -1
_SECCOMP_SET_MODE_FILTER = 1
# seccomp(2) is not wrapped by glibc 2.36; its number per machine.
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "ppc64le": 358, "s390x": 348, "riscv64": 277}

SECCOMP_FD_NAME = "seccompFd"  # config-linux.md "listenerPath": the name of the fd in `fds`


class _ArgCmp(ffi.Structure):
    """struct scmp_arg_cmp."""

    _fields_ = [
        ("arg", ffi.c_uint),
        ("op", ffi.c_int),
        ("datum_a", ffi.c_uint64),
        ("datum_b", ffi.c_uint64),
    ]


class _Version(ffi.Structure):
    _fields_ = [("major", ffi.c_uint), ("minor", ffi.c_uint), ("micro", ffi.c_uint)]


class _SeccompData(ffi.Structure):
    _fields_ = [
        ("nr", ffi.c_int),
        ("arch", ffi.c_uint32),
        ("instruction_pointer", ffi.c_uint64),
        ("args", ffi.c_uint64 * 6),
    ]


class _Notif(ffi.Structure):
    _fields_ = [("id", ffi.c_uint64), ("pid", ffi.c_uint32), ("flags", ffi.c_uint32), ("data", _SeccompData)]


class _NotifResp(ffi.Structure):
    _fields_ = [("id", ffi.c_uint64), ("val", ffi.c_int64), ("error", ffi.c_int32), ("flags", ffi.c_uint32)]


class _SockFprog(ffi.Structure):
    _fields_ = [("len", ffi.c_ushort), ("filter", ffi.c_void_p)]


class SeccompError(OSError):
    """libseccomp or the kernel refused something; the message names the call and the profile entry."""


_LIB: list[ffi.CDLL] = []  # the one library, once loaded (not functools.lru_cache: ~0.5 ms of import)


def _lib() -> ffi.CDLL:
    """Open libseccomp.so.2 once, on first use, and declare the prototypes used here."""
    if _LIB:
        return _LIB[0]
    try:
        lib = ffi.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as err:
        raise SeccompError(
            errno.ENOENT, f"linux.seccomp is set but libseccomp.so.2 cannot be loaded ({err}): install libseccomp2"
        ) from None
    ctx = ffi.c_void_p
    lib.seccomp_init.argtypes = [ffi.c_uint32]
    lib.seccomp_init.restype = ctx
    lib.seccomp_release.argtypes = [ctx]
    lib.seccomp_release.restype = None
    lib.seccomp_arch_add.argtypes = [ctx, ffi.c_uint32]
    lib.seccomp_arch_resolve_name.argtypes = [ffi.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ffi.c_uint32
    lib.seccomp_arch_native.argtypes = []
    lib.seccomp_arch_native.restype = ffi.c_uint32
    lib.seccomp_attr_set.argtypes = [ctx, ffi.c_int, ffi.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ffi.c_char_p]
    lib.seccomp_syscall_resolve_name.restype = ffi.c_int
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ffi.c_uint32, ffi.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.restype = ffi.c_int
    lib.seccomp_rule_add_array.argtypes = [ctx, ffi.c_uint32, ffi.c_int, ffi.c_uint, ffi.POINTER(_ArgCmp)]
    lib.seccomp_load.argtypes = [ctx]
    lib.seccomp_export_bpf.argtypes = [ctx, ffi.c_int]
    lib.seccomp_api_get.argtypes = []
    lib.seccomp_api_get.restype = ffi.c_uint
    lib.seccomp_version.argtypes = []
    lib.seccomp_version.restype = ffi.POINTER(_Version)
    if hasattr(lib, "seccomp_notify_fd"):  # libseccomp >= 2.5
        lib.seccomp_notify_fd.argtypes = [ctx]
        lib.seccomp_notify_alloc.argtypes = [
            ffi.POINTER(ffi.POINTER(_Notif)),
            ffi.POINTER(ffi.POINTER(_NotifResp)),
        ]
        lib.seccomp_notify_free.argtypes = [ffi.POINTER(_Notif), ffi.POINTER(_NotifResp)]
        lib.seccomp_notify_free.restype = None
        lib.seccomp_notify_receive.argtypes = [ffi.c_int, ffi.POINTER(_Notif)]
        lib.seccomp_notify_respond.argtypes = [ffi.c_int, ffi.POINTER(_NotifResp)]
        lib.seccomp_notify_id_valid.argtypes = [ffi.c_int, ffi.c_uint64]
    _LIB.append(lib)
    return lib


def _rc(result: int, what: str) -> int:
    """libseccomp returns -errno (not -1 with errno set) on failure."""
    if result < 0:
        raise SeccompError(-result, f"{what}: {os.strerror(-result)}")
    return result


def _default_warn(message: str) -> None:
    import warnings  # only on the (rare) warning path

    warnings.warn(message, RuntimeWarning, stacklevel=3)


def version() -> tuple[int, int, int]:
    v = _lib().seccomp_version().contents
    return (v.major, v.minor, v.micro)


def api_level() -> int:
    """seccomp_api_get(3): what the library *and the running kernel* support together (6 = notify)."""
    return int(_lib().seccomp_api_get())


def describe() -> str:
    """Which seccomp binding this engine uses, for `engine features` and bug reports."""
    major, minor, micro = version()
    return f"libseccomp {major}.{minor}.{micro} (libseccomp.so.2 via ctypes, API level {api_level()})"


def syscall_number(name: str) -> int | None:
    """The native syscall number libseccomp knows for `name` (negative pseudo-numbers for calls that
    exist only on another architecture of the filter), or None if libseccomp does not know it."""
    number = _lib().seccomp_syscall_resolve_name(name.encode())
    return None if number == _NR_SCMP_ERROR else number


def syscall_number_on(arch: int, name: str) -> int | None:
    """The number of syscall `name` on the architecture whose libseccomp token is `arch` (None if unknown)."""
    number = _lib().seccomp_syscall_resolve_name_arch(arch, name.encode())
    return None if number == _NR_SCMP_ERROR else number


def arch_token(name: str) -> int | None:
    """'SCMP_ARCH_X86_64' -> AUDIT_ARCH_X86_64; None for a spec architecture this libseccomp lacks.

    Raises ValueError for a name that is not one of the spec's architectures at all.
    """
    if name not in spec_architectures():
        raise ValueError(f"unknown seccomp architecture {name!r}")
    token = _lib().seccomp_arch_resolve_name(name.removeprefix("SCMP_ARCH_").lower().encode())
    return token or None


@record(frozen=True)
class Rule:
    """One seccomp_rule_add_array() call: a syscall, an action, and conditions that are AND-ed."""

    syscall: str
    number: int
    action: int
    conditions: tuple[tuple[int, int, int, int], ...] = ()  # (arg index, operator, datum_a, datum_b)


@record
class FilterPlan:
    """A validated linux.seccomp object, ready for libseccomp."""

    default_action: int
    architectures: list[int] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    skipped_syscalls: list[str] = field(default_factory=list)  # unknown to libseccomp: ignored as runc does
    uses_notify: bool = False
    listener_path: str | None = None
    listener_metadata: str | None = None
    # Prepended to libseccomp's program: ENOSYS for syscalls newer than the profile (seccomp_enosys).
    enosys_stub: list[tuple[int, int, int, int]] = field(default_factory=list)


def _action(name: Any, errno_ret: Any, where: str) -> int:
    if name not in ACTIONS:
        raise ValueError(f"{where}: unknown seccomp action {name!r} (expected one of {sorted(ACTIONS)})")
    value = ACTIONS[name]
    if name in _ACTIONS_WITH_ERRNO:
        ret = errno.EPERM if errno_ret is None else errno_ret
        if not isinstance(ret, int) or isinstance(ret, bool) or not 0 <= ret <= 0xFFFF:
            raise ValueError(f"{where}: errnoRet must be an integer 0..65535, got {errno_ret!r}")
        return value | ret
    if errno_ret is not None:
        raise ValueError(f"{where}: errnoRet is set but {name} does not return an errno (only ERRNO and TRACE do)")
    return value


def _u64(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 64:
        raise ValueError(f"{where}: expected an unsigned 64-bit integer, got {value!r}")
    return value


def compile_profile(seccomp: Seccomp, *, warn: Warn | None = None) -> FilterPlan:
    """Validate config.json `linux.seccomp` and resolve every name; nothing is loaded."""
    warn = warn or _default_warn
    where = "linux.seccomp"
    if "defaultAction" not in seccomp:
        raise ValueError(f"{where}.defaultAction is required")
    default_name = seccomp["defaultAction"]
    default = _action(default_name, seccomp.get("defaultErrnoRet"), f"{where}.defaultAction")
    if default_name == "SCMP_ACT_NOTIFY":
        raise ValueError(f"{where}.defaultAction: SCMP_ACT_NOTIFY cannot be the default action")
    plan = FilterPlan(default_action=default)

    for i, arch in enumerate(seccomp.get("architectures", [])):
        if arch not in spec_architectures():
            raise ValueError(f"{where}.architectures[{i}]: unknown architecture {arch!r}")
        token = arch_token(arch)
        if token is None:
            # Only a foreign architecture can be missing from the library: no process here can use it.
            warn(f"{where}.architectures[{i}]: {arch} is not supported by {describe()}: ignored")
            continue
        if token not in plan.architectures:
            plan.architectures.append(token)

    flags = seccomp.get("flags")
    if flags is None:
        if api_level() >= _FLAG_API_LEVEL["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]:
            plan.flags = ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]  # runc's default when `flags` is absent
    else:
        for i, flag in enumerate(flags):
            if flag not in FLAGS:
                raise ValueError(f"{where}.flags[{i}]: unknown seccomp flag {flag!r} (expected one of {sorted(FLAGS)})")
            if flag not in plan.flags:
                plan.flags.append(flag)

    for i, entry in enumerate(seccomp.get("syscalls", [])):
        here = f"{where}.syscalls[{i}]"
        names = entry.get("names")
        if not names or not isinstance(names, list):
            raise ValueError(f"{here}.names must contain at least one syscall name")
        action = _action(entry.get("action"), entry.get("errnoRet"), f"{here}.action")
        if entry.get("action") == "SCMP_ACT_NOTIFY":
            if "write" in names:
                raise ValueError(f"{here}: SCMP_ACT_NOTIFY cannot be used for the write syscall")
            plan.uses_notify = True
        conditions: list[tuple[int, int, int, int]] = []
        per_index = [0] * _SYSCALL_MAX_ARGS
        for j, arg in enumerate(entry.get("args", [])):
            a_where = f"{here}.args[{j}]"
            index = arg.get("index")
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < _SYSCALL_MAX_ARGS:
                raise ValueError(f"{a_where}.index must be 0..5, got {index!r}")
            op = arg.get("op")
            if op not in OPERATORS:
                raise ValueError(f"{a_where}.op: unknown operator {op!r} (expected one of {sorted(OPERATORS)})")
            value = _u64(arg.get("value"), f"{a_where}.value")
            value_two = _u64(arg.get("valueTwo", 0), f"{a_where}.valueTwo")
            per_index[index] += 1
            conditions.append((index, OPERATORS[op], value, value_two))
        if action == default:
            continue  # libseccomp refuses a rule that repeats the default action; it would change nothing
        for name in names:
            if not isinstance(name, str) or not name:
                raise ValueError(f"{here}.names: {name!r} is not a syscall name")
            number = syscall_number(name)
            if number is None:
                plan.skipped_syscalls.append(name)
                continue
            if max(per_index) > 1:
                # Same argument compared twice: libseccomp cannot AND those, runc adds each as its own rule.
                plan.rules.extend(Rule(name, number, action, (cond,)) for cond in conditions)
            else:
                plan.rules.append(Rule(name, number, action, tuple(conditions)))

    if seccomp_enosys.needs_stub(plan.default_action):
        names = [n for entry in seccomp.get("syscalls", []) for n in entry["names"] if isinstance(n, str) and n]
        limits = seccomp_enosys.highest_syscalls(plan.architectures, names, syscall_number_on)
        for token in plan.architectures:
            if not any(token in per_token for per_token in limits.values()):
                warn(f"{where}: no syscall of the profile is known on architecture {token:#x}: no ENOSYS stub for it")
        plan.enosys_stub = seccomp_enosys.generate(limits)

    plan.listener_path = seccomp.get("listenerPath") or None
    plan.listener_metadata = seccomp.get("listenerMetadata") or None
    if plan.listener_metadata and not plan.listener_path:
        raise ValueError(f"{where}.listenerMetadata must not be set without listenerPath")
    if plan.uses_notify and api_level() < _NOTIFY_API_LEVEL:
        raise ValueError(
            f"{where}: SCMP_ACT_NOTIFY needs libseccomp >= 2.5 and Linux >= 5.7 (API level 6), have {describe()}"
        )
    return plan


def _set_attr(ctx: int, attr: int, value: int, what: str) -> None:
    _rc(_lib().seccomp_attr_set(ctx, attr, value), f"seccomp_attr_set({what})")


def _load_by_hand(ctx: int, flags: int, stub: list[tuple[int, int, int, int]]) -> int | None:
    """Export the BPF program, put `stub` in front of it, and load it with seccomp(2) ourselves.

    For the ENOSYS stub, and for flags the installed libseccomp has no attribute for (WAIT_KILLABLE_RECV
    before 2.6). Returns the listener fd if one was asked for.
    """
    machine = os.uname().machine
    if machine not in _SYS_SECCOMP:
        raise SeccompError(errno.ENOSYS, f"seccomp(2) syscall number unknown for {machine}")
    memfd = os.memfd_create("engine-seccomp-bpf", os.MFD_CLOEXEC)
    try:
        _rc(_lib().seccomp_export_bpf(ctx, memfd), "seccomp_export_bpf")
        size = os.lseek(memfd, 0, os.SEEK_END)
        program = os.pread(memfd, size, 0)
    finally:
        os.close(memfd)
    if stub:
        try:
            program = seccomp_enosys.prepend(stub, program)
        except ValueError as err:
            raise SeccompError(errno.E2BIG, str(err)) from None
    buf = ffi.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ffi.addressof(buf))  # buf outlives the syscall below
    if flags & SECCOMP_FILTER_FLAG_TSYNC and flags & SECCOMP_FILTER_FLAG_NEW_LISTENER:
        flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH  # TSYNC's thread-id return would collide with the fd
    libc.syscall.restype = ffi.c_long
    result = libc.syscall(
        ffi.c_long(_SYS_SECCOMP[machine]),
        ffi.c_uint(_SECCOMP_SET_MODE_FILTER),
        ffi.c_uint(flags),
        ffi.byref(prog),
    )
    if result == -1:
        code = ffi.get_errno()
        raise SeccompError(code, f"seccomp(SECCOMP_SET_MODE_FILTER, {flags:#x}): {_load_hint(code)}")
    return int(result) if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER else None


def _load_hint(err: int) -> str:
    message = os.strerror(err)
    if err == errno.EACCES:
        message += " (without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it before dropping caps)"
    elif err == errno.EINVAL:
        message += " (a flag or action this kernel does not support?)"
    return message


def load_plan(plan: FilterPlan, *, warn: Warn | None = None) -> int | None:
    """Load a compiled plan into this thread (and, with TSYNC, every thread). Returns the notify fd."""
    warn = warn or _default_warn
    lib = _lib()
    ctx = lib.seccomp_init(plan.default_action)
    if not ctx:
        raise SeccompError(errno.EINVAL, f"seccomp_init: default action {plan.default_action:#x} refused")
    try:
        # libseccomp sets no_new_privs on load by default; the spec leaves that to process.noNewPrivileges.
        _set_attr(ctx, _ATTR_CTL_NNP, 0, "CTL_NNP")
        # Report the kernel's errno from seccomp_load instead of a generic ECANCELED (libseccomp >= 2.5;
        # an older library refuses the attribute, which only costs the detail in the error message).
        lib.seccomp_attr_set(ctx, _ATTR_API_SYSRAWRC, 1)
        for token in plan.architectures:
            result = lib.seccomp_arch_add(ctx, token)
            if result not in (0, -errno.EEXIST):  # the native architecture is already in the filter
                _rc(result, f"seccomp_arch_add({token:#x})")
        by_hand_flags = 0
        level = api_level()
        for flag in plan.flags:
            if flag == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" and not plan.uses_notify:
                # The kernel only accepts it together with a listener: there is nothing to wait on.
                warn("linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored: no SCMP_ACT_NOTIFY rule")
                continue
            if level >= _FLAG_API_LEVEL[flag] and lib.seccomp_attr_set(ctx, _FLAG_ATTRS[flag], 1) == 0:
                continue
            if flag == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV":
                by_hand_flags |= FLAGS[flag]  # no libseccomp attribute before 2.6: load with seccomp(2)
                continue
            raise SeccompError(
                errno.EOPNOTSUPP, f"linux.seccomp.flags: {flag} is not supported by {describe()} on this kernel"
            )
        if len(plan.rules) > 32:
            # Binary-tree syscall lookup for long profiles (runc does the same past 32 rules).
            lib.seccomp_attr_set(ctx, _ATTR_CTL_OPTIMIZE, 2)
        for rule in plan.rules:
            conds = (_ArgCmp * max(1, len(rule.conditions)))()
            for k, (index, op, datum_a, datum_b) in enumerate(rule.conditions):
                conds[k] = _ArgCmp(index, op, datum_a, datum_b)
            _rc(
                lib.seccomp_rule_add_array(ctx, rule.action, rule.number, len(rule.conditions), conds),
                f"linux.seccomp: adding the rule for {rule.syscall} (action {rule.action:#x})",
            )
        if by_hand_flags or plan.enosys_stub:
            for flag in plan.flags:
                if flag != "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" or plan.uses_notify:
                    by_hand_flags |= FLAGS[flag]
            if plan.uses_notify:
                by_hand_flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER
            return _load_by_hand(ctx, by_hand_flags, plan.enosys_stub)
        result = lib.seccomp_load(ctx)
        if result < 0:
            raise SeccompError(-result, f"seccomp_load: {_load_hint(-result)}")
        if plan.uses_notify:
            return _rc(lib.seccomp_notify_fd(ctx), "seccomp_notify_fd")
        return None
    finally:
        lib.seccomp_release(ctx)


def build_and_load(
    seccomp: Seccomp,
    *,
    on_notify_fd: Callable[[int], None] | None = None,
    warn: Warn | None = None,
) -> int | None:
    """Build config.json `linux.seccomp` into a filter and load it into the calling process.

    With SCMP_ACT_NOTIFY rules, the listener fd is passed to on_notify_fd (which typically sends it to
    the runtime parent, which calls send_notify_fd) and returned; the caller owns it and closes it once
    handed on. Without notify rules, returns None.
    """
    plan = compile_profile(seccomp, warn=warn)
    if plan.uses_notify and not plan.listener_path and on_notify_fd is None:
        raise ValueError("linux.seccomp.listenerPath is required when SCMP_ACT_NOTIFY is used")
    fd = load_plan(plan, warn=warn)
    if fd is not None and on_notify_fd is not None:
        on_notify_fd(fd)
    return fd


def container_process_state(
    state: Mapping[str, Any], *, pid: int, metadata: str | None, oci_version: str
) -> dict[str, Any]:
    """config-linux.md "The Container Process State" (runtime-spec specs-go ContainerProcessState)."""
    message: dict[str, Any] = {"ociVersion": oci_version, "fds": [SECCOMP_FD_NAME], "pid": pid}
    if metadata:
        message["metadata"] = metadata  # omitempty, as specs-go marshals it
    message["state"] = dict(state)
    return message


def send_notify_fd(
    listener_path: str,
    fd: int,
    state_json: bytes,
    metadata: str | None,
    *,
    pid: int | None = None,
    oci_version: str | None = None,
) -> None:
    """Send the seccomp notify fd to the agent at `linux.seccomp.listenerPath`, as runc does.

    config-linux.md: connect an AF_UNIX SOCK_STREAM socket, send exactly one container process state
    (JSON: ociVersion, fds ["seccompFd"], pid, metadata, state) with the fd in SCM_RIGHTS on the first
    sendmsg, then close the connection. `state_json` is the runtime state (runtime.md "State"); `pid` is
    the container process as seen by the runtime, defaulting to the state's pid.
    """
    import json  # only on the notify path: keep the init's imports small
    import socket

    state = json.loads(state_json)
    if oci_version is None:
        from engine import SPEC_VERSION

        oci_version = SPEC_VERSION
    message = container_process_state(
        state, pid=state.get("pid", 0) if pid is None else pid, metadata=metadata, oci_version=oci_version
    )
    payload = json.dumps(message, separators=(",", ":")).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(listener_path)
            sent = socket.send_fds(sock, [payload], [fd])
            if sent < len(payload):
                sock.sendall(payload[sent:])  # the spec allows more sendmsg calls, fds only on the first
        except OSError as err:
            raise OSError(
                err.errno, f"linux.seccomp.listenerPath {listener_path}: sending the seccomp fd: {err.strerror}"
            ) from None


@record(frozen=True)
class NotifyRequest:
    """One struct seccomp_notif: a syscall a filtered process is blocked in, waiting for our answer."""

    id: int
    pid: int
    flags: int
    nr: int
    arch: int
    instruction_pointer: int
    args: tuple[int, ...]


def notify_receive(fd: int) -> NotifyRequest:
    """Block until a process hits an SCMP_ACT_NOTIFY rule on the filter behind `fd` (an agent's side)."""
    lib = _lib()
    req = ffi.POINTER(_Notif)()
    _rc(lib.seccomp_notify_alloc(ffi.byref(req), None), "seccomp_notify_alloc")
    try:
        _rc(lib.seccomp_notify_receive(fd, req), "seccomp_notify_receive")
        r = req.contents
        return NotifyRequest(
            r.id, r.pid, r.flags, r.data.nr, r.data.arch, r.data.instruction_pointer, tuple(r.data.args)
        )
    finally:
        lib.seccomp_notify_free(req, None)


def notify_respond(fd: int, request_id: int, *, val: int = 0, error: int = 0, flags: int = 0) -> None:
    """Answer a notification: the syscall returns `val`, or fails with errno `error` (a positive errno).

    flags=1 (SECCOMP_USER_NOTIF_FLAG_CONTINUE) lets the kernel run the syscall instead.
    """
    lib = _lib()
    resp = ffi.POINTER(_NotifResp)()
    _rc(lib.seccomp_notify_alloc(None, ffi.byref(resp)), "seccomp_notify_alloc")
    try:
        r = resp.contents
        r.id = request_id
        r.val = val
        r.error = -abs(error)
        r.flags = flags
        _rc(lib.seccomp_notify_respond(fd, resp), "seccomp_notify_respond")
    finally:
        lib.seccomp_notify_free(None, resp)
