"""The cgroup v2 device allowlist as a BPF_PROG_TYPE_CGROUP_DEVICE program, assembled here instruction by
instruction from the normal form that devices.Emulator computes.

cgroup v2 has no devices.allow file: the kernel runs every BPF_CGROUP_DEVICE program attached to the cgroup and its
ancestors on each open/mknod of a device node, with R1 pointing at

    struct bpf_cgroup_dev_ctx { __u32 access_type; /* (access << 16) | type */ __u32 major; __u32 minor; };

and the access is allowed if every program returns 1. The program (same shape as runc's and crun's):

    r2 = ctx->access_type & 0xffff        device type: BPF_DEVCG_DEV_BLOCK 1, BPF_DEVCG_DEV_CHAR 2
    r3 = ctx->access_type >> 16           requested modes: MKNOD 1, READ 2, WRITE 4
    r4 = ctx->major; r5 = ctx->minor
    one block per exception:
        if r2 != type goto next
        deny-all mode:  r1 = r3 & modes; if r1 != r3 goto next     (the exception grants every requested mode)
        allow-all mode: r1 = r3 & modes; if r1 == 0 goto next      (the exception denies some requested mode)
        if r4 != major goto next          (omitted for "any"; likewise the minor)
        return exception's verdict
    next: ...
    return default verdict

The mode test is skipped when the exception covers "rwm". The allow-all form differs from runc, whose program
only matches a deny exception when it covers every requested mode (so "deny c 1:3 w" let O_RDWR through); here
it follows the v1 kernel's match_exception_partial.
"""

from __future__ import annotations

import struct

from engine.cgroups.devices import ALL_ACCESS, Emulator

# Instruction classes, sizes, modes, sources and operations (include/uapi/linux/bpf_common.h, bpf.h).
BPF_LDX, BPF_ALU, BPF_JMP = 0x01, 0x04, 0x05
BPF_W, BPF_MEM = 0x00, 0x60
BPF_K, BPF_X = 0x00, 0x08
BPF_AND, BPF_RSH, BPF_MOV = 0x50, 0x70, 0xB0
BPF_JEQ, BPF_JNE, BPF_EXIT = 0x10, 0x50, 0x90

DEV_BLOCK, DEV_CHAR = 1, 2  # BPF_DEVCG_DEV_*
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4  # BPF_DEVCG_ACC_*
ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
TYPES = {"c": DEV_CHAR, "b": DEV_BLOCK}

R0, R1, R2, R3, R4, R5 = range(6)
INSN_SIZE = 8


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """struct bpf_insn: u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm (little-endian: x86_64, arm64)."""
    if imm > 0x7FFFFFFF:
        imm -= 1 << 32  # the field is s32; 32-bit ALU ops use the low 32 bits as they are
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def ldx_w(dst: int, src: int, off: int) -> bytes:
    return insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off)


def alu32_k(op: int, dst: int, imm: int) -> bytes:
    return insn(BPF_ALU | op | BPF_K, dst, imm=imm)


def mov32_x(dst: int, src: int) -> bytes:
    return insn(BPF_ALU | BPF_MOV | BPF_X, dst, src)


def jmp_k(op: int, dst: int, imm: int, off: int) -> bytes:
    return insn(BPF_JMP | op | BPF_K, dst, off=off, imm=imm)


def jmp_x(op: int, dst: int, src: int, off: int) -> bytes:
    return insn(BPF_JMP | op | BPF_X, dst, src, off=off)


def exit_with(verdict: bool) -> list[bytes]:
    return [alu32_k(BPF_MOV, R0, 1 if verdict else 0), insn(BPF_JMP | BPF_EXIT)]


def _block(dev_type: str, major: int | None, minor: int | None, access: str, default_allow: bool) -> list[bytes]:
    # Jumps are kept as (kind, register, operand) until the block's length is known: each one skips to the end.
    parts: list[object] = [("jne_k", R2, TYPES[dev_type])]
    if access != ALL_ACCESS:
        bits = sum(ACCESS_BITS[c] for c in access)
        parts += [mov32_x(R1, R3), alu32_k(BPF_AND, R1, bits)]
        parts.append(("jeq_k", R1, 0) if default_allow else ("jne_x", R1, R3))
    for reg, value in ((R4, major), (R5, minor)):
        if value is None:
            continue
        if value <= 0x7FFFFFFF:
            parts.append(("jne_k", reg, value))  # 64-bit compare against the sign-extended imm: exact below 2^31
        else:
            parts += [alu32_k(BPF_MOV, R1, value), ("jne_x", reg, R1)]  # mov32 zero-extends
    parts += exit_with(not default_allow)
    out: list[bytes] = []
    for i, part in enumerate(parts):
        if isinstance(part, bytes):
            out.append(part)
            continue
        assert isinstance(part, tuple)
        kind, reg, operand = part
        off = len(parts) - i - 1  # jump past the rest of this block
        if kind == "jne_k":
            out.append(jmp_k(BPF_JNE, reg, operand, off))
        elif kind == "jeq_k":
            out.append(jmp_k(BPF_JEQ, reg, operand, off))
        else:
            out.append(jmp_x(BPF_JNE, reg, operand, off))
    return out


def device_program(emu: Emulator) -> bytes:
    """The instructions (struct bpf_insn array) enforcing emu."""
    prog = [
        ldx_w(R2, R1, 0),
        alu32_k(BPF_AND, R2, 0xFFFF),
        ldx_w(R3, R1, 0),
        alu32_k(BPF_RSH, R3, 16),
        ldx_w(R4, R1, 4),
        ldx_w(R5, R1, 8),
    ]
    for (dev_type, major, minor), access in emu.sorted():
        prog += _block(dev_type, major, minor, access, emu.default_allow)
    prog += exit_with(emu.default_allow)
    return b"".join(prog)


def run(program: bytes, dev_type: int, major: int, minor: int, access: int) -> int:
    """Interpret `program` for one request: the reference used by the unit tests (and a debugging aid). Knows
    only the instructions device_program emits."""
    regs = [0] * 11
    ctx = struct.pack("<III", (access << 16) | dev_type, major, minor)
    mask32 = 0xFFFFFFFF
    pc = 0
    count = len(program) // INSN_SIZE
    while pc < count:
        code, regs_byte, off, imm = struct.unpack_from("<BBhi", program, pc * INSN_SIZE)
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code == BPF_LDX | BPF_MEM | BPF_W:
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == BPF_ALU | BPF_AND | BPF_K:
            regs[dst] = regs[dst] & imm & mask32
        elif code == BPF_ALU | BPF_RSH | BPF_K:
            regs[dst] = (regs[dst] & mask32) >> imm
        elif code == BPF_ALU | BPF_MOV | BPF_K:
            regs[dst] = imm & mask32
        elif code == BPF_ALU | BPF_MOV | BPF_X:
            regs[dst] = regs[src] & mask32
        elif code in (BPF_JMP | BPF_JNE | BPF_K, BPF_JMP | BPF_JEQ | BPF_K):
            operand = imm & 0xFFFFFFFFFFFFFFFF  # sign-extended to 64 bits
            equal = regs[dst] == operand
            if equal == (code & 0xF0 == BPF_JEQ):
                pc += off
        elif code == BPF_JMP | BPF_JNE | BPF_X:
            if regs[dst] != regs[src]:
                pc += off
        elif code == BPF_JMP | BPF_EXIT:
            return regs[R0]
        else:
            raise ValueError(f"instruction {code:#x} at {pc - 1} is not one device_program emits")
    raise ValueError("the program ran off its end")
