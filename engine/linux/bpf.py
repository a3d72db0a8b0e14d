"""bpf(2) through ctypes: just what the cgroup v2 device allowlist needs.

Load a BPF_PROG_TYPE_CGROUP_DEVICE program, attach it to a cgroup directory with BPF_F_ALLOW_MULTI, list the
programs attached to a cgroup, and detach them again. glibc has no bpf() wrapper, hence libc.syscall with the
per-architecture number. Every failure raises OSError naming the bpf command.
"""

from __future__ import annotations

import errno
import os
import struct

from engine.linux import ffi
from engine.linux.libc import libc

SYS_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280}

# enum bpf_cmd
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6  # enum bpf_attach_type
BPF_F_ALLOW_MULTI = 1 << 1

ATTR_SIZE = 128  # big enough for every union member used here; the kernel requires unused bytes to be zero
LOG_SIZE = 64 * 1024


def _bpf(cmd: int, attr: ffi.Array[ffi.c_char], what: str) -> int:
    number = SYS_BPF.get(os.uname().machine)
    if number is None:
        raise OSError(errno.ENOSYS, f"{what}: bpf(2) syscall number unknown for {os.uname().machine}")
    libc.syscall.restype = ffi.c_long
    result = int(libc.syscall(ffi.c_long(number), ffi.c_int(cmd), attr, ffi.c_uint(ATTR_SIZE)))
    if result < 0:
        err = ffi.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _attr() -> ffi.Array[ffi.c_char]:
    return ffi.create_string_buffer(ATTR_SIZE)


def _addr(buf: ffi.Array[ffi.c_char]) -> int:
    return ffi.addressof(buf)


def prog_load_cgroup_device(instructions: bytes, license: str = "Apache", name: str = "engine_devices") -> int:
    """BPF_PROG_LOAD; returns the program fd (O_CLOEXEC). On a verifier rejection the verifier's last log line
    is part of the error."""
    insns = ffi.create_string_buffer(instructions, len(instructions))
    lic = ffi.create_string_buffer(license.encode())

    def load(log: ffi.Array[ffi.c_char] | None) -> int:
        attr = _attr()
        # union bpf_attr, BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, log_level, log_size, log_buf,
        # kern_version, prog_flags, prog_name[16]
        struct.pack_into(
            "<IIQQ", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(instructions) // 8, _addr(insns), _addr(lic)
        )
        if log is not None:
            struct.pack_into("<IIQ", attr, 24, 1, len(log), _addr(log))
        struct.pack_into("16s", attr, 48, name.encode()[:15])
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")

    try:
        return load(None)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EACCES):
            raise
        log = ffi.create_string_buffer(LOG_SIZE)
        try:
            return load(log)  # a second try only to get the verifier's explanation
        except OSError as again:
            lines = [ln for ln in log.value.decode(errors="replace").splitlines() if ln.strip()]
            detail = f" (verifier: {lines[-1]})" if lines else ""
            raise OSError(again.errno, f"{again.strerror}{detail}") from None


def prog_attach(
    prog_fd: int, cgroup_fd: int, attach_type: int = BPF_CGROUP_DEVICE, flags: int = BPF_F_ALLOW_MULTI
) -> None:
    attr = _attr()
    struct.pack_into("<IIII", attr, 0, cgroup_fd, prog_fd, attach_type, flags)  # target_fd, attach_bpf_fd, type, flags
    _bpf(BPF_PROG_ATTACH, attr, "bpf(BPF_PROG_ATTACH)")


def prog_detach(prog_fd: int, cgroup_fd: int, attach_type: int = BPF_CGROUP_DEVICE) -> None:
    attr = _attr()
    struct.pack_into("<III", attr, 0, cgroup_fd, prog_fd, attach_type)
    _bpf(BPF_PROG_DETACH, attr, "bpf(BPF_PROG_DETACH)")


def prog_query(cgroup_fd: int, attach_type: int = BPF_CGROUP_DEVICE) -> list[int]:
    """Ids of the programs attached directly to this cgroup (not the inherited ones)."""
    count = 64  # the kernel's BPF_CGROUP_MAX_PROGS
    for _ in range(4):
        ids = (ffi.c_uint32 * count)()
        attr = _attr()
        # target_fd, attach_type, query_flags, attach_flags, prog_ids, prog_cnt
        struct.pack_into("<IIIIQI", attr, 0, cgroup_fd, attach_type, 0, 0, ffi.addressof(ids), count)
        try:
            _bpf(BPF_PROG_QUERY, attr, "bpf(BPF_PROG_QUERY)")
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
            count = struct.unpack_from("<I", attr, 24)[0]  # the kernel wrote the real count
            continue
        found = struct.unpack_from("<I", attr, 24)[0]
        return list(ids[:found])
    raise OSError(errno.ENOSPC, "bpf(BPF_PROG_QUERY): the list of programs kept growing")


def prog_fd_by_id(prog_id: int) -> int:
    attr = _attr()
    struct.pack_into("<I", attr, 0, prog_id)
    return _bpf(BPF_PROG_GET_FD_BY_ID, attr, "bpf(BPF_PROG_GET_FD_BY_ID)")


def prog_id(prog_fd: int) -> int:
    """The kernel-wide id of a loaded program (struct bpf_prog_info: type, id, ...)."""
    info = ffi.create_string_buffer(16)
    attr = _attr()
    struct.pack_into("<IIQ", attr, 0, prog_fd, len(info), _addr(info))
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr, "bpf(BPF_OBJ_GET_INFO_BY_FD)")
    return int(struct.unpack_from("<I", info, 4)[0])
