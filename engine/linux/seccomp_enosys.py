"""The -ENOSYS stub runc puts in front of a seccomp filter (its libcontainer/seccomp/patchbpf), written anew.

Why: a profile lists the syscalls its authors knew. A syscall added to the kernel since (clone3, openat2,
faccessat2 for many images' profiles) is not in it, so it gets the default action, typically EPERM, and libc
takes EPERM as "not allowed" rather than "not there": glibc's clone3 and openat2 fallbacks only trigger on
ENOSYS. The stub makes every syscall *newer than the profile* fail with ENOSYS, while syscalls the profile does
know but does not allow still get the default action.

"Newer than the profile" is runc's rule: above the highest syscall number, on that architecture, among every
name the profile mentions (any action). Like runc 1.1:
- only for the architectures the profile lists (none listed: no stub);
- not when the default action lets syscalls through anyway (ALLOW, LOG, TRACE: a tracer handles new
  syscalls itself), nor when the default already is ERRNO(ENOSYS);
- x86_64 and x32 share AUDIT_ARCH_X86_64: bit 30 of the syscall number (__X32_SYSCALL_BIT) says which
  table, and each gets its own limit (or none, when only one of the two is listed);
- s390/s390x: syscall 0 is where the kernel multiplexes numbers it does not know, so 0 gets ENOSYS too.

The stub is classic BPF, prepended to the program libseccomp generates (seccomp_export_bpf); it ends by
falling through to that program, whose jumps are relative and so unaffected. Layout (forward jumps only):

    ld  [4]                         ; seccomp_data.arch
    jeq ARCH_1 -> section_1         ; one per architecture with a limit
    ...
    ja  -> filter                   ; any other architecture: the filter decides (its bad-arch action)
  section_n:
    ld  [0]                         ; seccomp_data.nr
    [jeq 0 -> enosys]               ; s390(x)
    [jset X32_BIT -> x32 part]      ; x86_64
    jgt MAX -> enosys
    ja  -> filter
    [x32 part: jgt MAX_X32 -> enosys; ja -> filter]
  enosys:
    ret ERRNO(ENOSYS)
  filter:                           ; libseccomp's program
"""

from __future__ import annotations

import errno
import struct

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

# Classic BPF opcodes (linux/bpf_common.h).
LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
JMP_JA = 0x05
JMP_JEQ_K = 0x15
JMP_JGT_K = 0x25
JMP_JSET_K = 0x45
RET_K = 0x06

# struct seccomp_data offsets.
OFFSET_NR = 0
OFFSET_ARCH = 4

SECCOMP_RET_ERRNO = 0x00050000
RET_ENOSYS = SECCOMP_RET_ERRNO | errno.ENOSYS

X32_SYSCALL_BIT = 0x40000000
AUDIT_ARCH_X86_64 = 0xC000003E
SCMP_ARCH_X32 = 0x4000003E  # libseccomp's own token for x32; the kernel reports it as AUDIT_ARCH_X86_64
AUDIT_ARCH_S390 = 0x00000016
AUDIT_ARCH_S390X = 0x80000016

# libseccomp's action values (engine/linux/seccomp.py) of the defaults that need no stub.
_PERMISSIVE = {0x7FFF0000, 0x7FFC0000}  # ALLOW, LOG
_ACT_TRACE = 0x7FF00000
_ACTION_MASK = 0xFFFF0000

Insn = tuple[int, int, int, int]  # (code, jt, jf, k): struct sock_filter
# While assembling: a label, or an instruction whose jump targets (jt, jf; k for JA) may be labels.
Item = str | tuple[int, int | str, int | str, int | str]
BPF_MAXINSNS = 4096


def needs_stub(default_action: int) -> bool:
    if default_action in _PERMISSIVE or default_action & _ACTION_MASK == _ACT_TRACE:
        return False
    return default_action != RET_ENOSYS  # libseccomp's ERRNO(ENOSYS) has the kernel's encoding


def highest_syscalls(
    arch_tokens: Iterable[int], names: Iterable[str], resolve: Callable[[int, str], int | None]
) -> dict[int, dict[int, int]]:
    """{kernel audit arch: {libseccomp arch token: highest syscall number named}} for the listed architectures.

    resolve(token, name) is the syscall's number on that architecture (None when unknown); libseccomp's
    negative pseudo-numbers, for calls another architecture has, do not count. An architecture none of whose
    names it knows gets no limit (runc warns and skips it too).
    """
    names = list(dict.fromkeys(names))
    limits: dict[int, dict[int, int]] = {}
    for token in dict.fromkeys(arch_tokens):
        numbers = [n for n in (resolve(token, name) for name in names) if n is not None and n >= 0]
        if numbers:
            audit = AUDIT_ARCH_X86_64 if token == SCMP_ARCH_X32 else token
            limits.setdefault(audit, {})[token] = max(numbers)
    return limits


def generate(limits: dict[int, dict[int, int]]) -> list[Insn]:
    """The stub for those limits ([] when there are none)."""
    if not limits:
        return []
    # Assembled with symbolic labels; offsets are resolved at the end (cBPF jumps are relative, forward).
    # An item is a label (str) or (code, jt, jf, k) where a jump target may be a label.
    items: list[Item] = [(LD_W_ABS, 0, 0, OFFSET_ARCH)]
    for audit in limits:
        items.append((JMP_JEQ_K, f"arch-{audit:#x}", 0, audit))
    items.append((JMP_JA, 0, 0, "filter"))  # ja's target is in k
    for audit, per_token in limits.items():
        items.append(f"arch-{audit:#x}")
        items.append((LD_W_ABS, 0, 0, OFFSET_NR))
        if audit in (AUDIT_ARCH_S390, AUDIT_ARCH_S390X):
            items.append((JMP_JEQ_K, "enosys", 0, 0))
        if audit == AUDIT_ARCH_X86_64:
            native, x32 = per_token.get(AUDIT_ARCH_X86_64), per_token.get(SCMP_ARCH_X32)
            x32_target = f"x32-{audit:#x}" if x32 is not None else "filter"
            native_target = 0 if native is not None else "filter"
            items.append((JMP_JSET_K, x32_target, native_target, X32_SYSCALL_BIT))
            if native is not None:
                items += [(JMP_JGT_K, "enosys", 0, native), (JMP_JA, 0, 0, "filter")]
            if x32 is not None:
                items += [f"x32-{audit:#x}", (JMP_JGT_K, "enosys", 0, x32), (JMP_JA, 0, 0, "filter")]
        else:
            (highest,) = per_token.values()
            items += [(JMP_JGT_K, "enosys", 0, highest), (JMP_JA, 0, 0, "filter")]
    items += ["enosys", (RET_K, 0, 0, RET_ENOSYS), "filter"]
    return _resolve(items)


def _resolve(items: list[Item]) -> list[Insn]:
    labels: dict[str, int] = {}
    count = 0
    for item in items:
        if isinstance(item, str):
            labels[item] = count
        else:
            count += 1
    program: list[Insn] = []
    for item in items:
        if isinstance(item, str):
            continue
        code, jt, jf, k = item
        here = len(program) + 1  # jumps count from the next instruction
        if code == JMP_JA:
            k = labels[k] - here if isinstance(k, str) else k
        else:
            jt = labels[jt] - here if isinstance(jt, str) else jt
            jf = labels[jf] - here if isinstance(jf, str) else jf
            if not (0 <= jt <= 255 and 0 <= jf <= 255):
                raise ValueError("seccomp ENOSYS stub: a conditional jump is out of range")
        program.append((code, int(jt), int(jf), int(k)))  # labels all resolved above
    return program


def encode(program: list[Insn]) -> bytes:
    """struct sock_filter[] in this machine's byte order, as seccomp_export_bpf writes it."""
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


def prepend(stub: list[Insn], exported: bytes) -> bytes:
    """The stub followed by libseccomp's exported program."""
    program = encode(stub) + exported
    if len(program) // 8 > BPF_MAXINSNS:
        raise ValueError(f"seccomp filter too long with the ENOSYS stub: {len(program) // 8} > {BPF_MAXINSNS}")
    return program
