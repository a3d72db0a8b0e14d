"""What the seccomp ENOSYS tests share: a profile from before clone3, and a probe program.

The probe is a tiny static x86-64 program that makes one syscall and exits with its errno: syscall(NR, 0, 0, 0,
0, 0, 0), then exit_group(-result & 0xff). So 38 means ENOSYS, 1 EPERM, 0 success (a positive result shows as
256 - it). It is written out as ELF bytes here (no compiler needed on the test machine), for containers that
need a syscall busybox has no applet for: a number the kernel does not know, or clone3/openat2.
"""

from __future__ import annotations

import json
import os
import platform
import struct
from pathlib import Path
from typing import Any

from engine.linux.seccomp import syscall_number

PODMAN_PROFILE = Path(__file__).parent / "unit" / "data" / "podman-default-seccomp.json"
# x86_64 numbers of the syscalls the tests probe.
PROBES = {"getcpu": 309, "clone3": 435, "openat2": 437, "faccessat2": 439, "unknown": 1000}

EXIT_GROUP = 231
_BASE = 0x400000
_HEADERS = 64 + 56  # ELF header + one program header


def _code(number: int) -> bytes:
    return b"".join(
        [
            b"\xb8" + struct.pack("<I", number),  # mov eax, number
            b"\x31\xff",  # xor edi, edi
            b"\x31\xf6",  # xor esi, esi
            b"\x31\xd2",  # xor edx, edx
            b"\x45\x31\xd2",  # xor r10d, r10d
            b"\x45\x31\xc0",  # xor r8d, r8d
            b"\x45\x31\xc9",  # xor r9d, r9d
            b"\x0f\x05",  # syscall
            b"\xf7\xd8",  # neg eax: -(-errno) = errno
            b"\x89\xc7",  # mov edi, eax
            b"\xb8" + struct.pack("<I", EXIT_GROUP),  # mov eax, exit_group
            b"\x0f\x05",  # syscall
        ]
    )


def probe_elf(number: int) -> bytes:
    code = _code(number)
    size = _HEADERS + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little endian, version 1, System V
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH", 2, 0x3E, 1, _BASE + _HEADERS, 64, 0, 0, 64, 56, 1, 0, 0, 0
    )  # ET_EXEC, x86-64, entry, phoff, shoff, flags, ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)  # PT_LOAD, R+X
    return header + program + code


def supported() -> bool:
    return platform.machine() == "x86_64"


def write_probe(directory: Path, name: str, number: int) -> Path:
    path = directory / name
    path.write_bytes(probe_elf(number))
    os.chmod(path, 0o755)
    return path


def profile_before_clone3(**extra: Any) -> dict[str, Any]:
    """podman's allow list (and its x86_64 arch_prctl rule) as an image from before clone3 would have it: nothing
    numbered 435 or above, and getcpu dropped (known in the profile's era, simply not allowed). Default action
    ERRNO (EPERM)."""
    podman = json.loads(PODMAN_PROFILE.read_text())
    names = [*podman["syscalls"][1]["names"], "arch_prctl"]
    allow = [n for n in names if n != "getcpu" and (syscall_number(n) or 0) < 435]
    return {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": allow, "action": "SCMP_ACT_ALLOW"}], **extra}
