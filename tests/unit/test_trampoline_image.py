"""engine/linux/trampoline.py packs its ELF header and its code's fields with int.to_bytes (no struct module in the
init): the image must be what the struct formats of the ELF64 spec give, and the init must not load struct."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from engine.linux import trampoline
from engine.linux.trampoline import BASE, CODE_OFFSET, _Code, _elf, _imm32

REPO = Path(__file__).resolve().parents[2]


def test_the_elf_header_and_program_headers() -> None:
    code = b"\x90" * 37
    image = _elf(code)
    assert image[:16] == b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    fields = struct.unpack_from("<HHIQQQIHHHHHH", image, 16)
    assert fields == (2, 0x3E, 1, BASE + CODE_OFFSET, 64, 0, 0, 64, 56, 2, 0, 0, 0)
    size = CODE_OFFSET + len(code)
    assert struct.unpack_from("<IIQQQQQQ", image, 64) == (1, 5, 0, BASE, BASE, size, size, 0x1000)
    assert struct.unpack_from("<IIQQQQQQ", image, 64 + 56) == (0x6474E551, 6, 0, 0, 0, 0, 0, 16)
    assert image[CODE_OFFSET:] == code and len(image) == size


def test_fields_are_little_endian_and_signed_where_relative() -> None:
    for value in (0, 1, 59, -1, -200, 2**31 - 1, -(2**31)):
        assert _imm32(value) == struct.pack("<i", value)
    with pytest.raises(OverflowError):
        _imm32(2**31)
    c = _Code()
    c.label("back")
    c.emit(0x90, 0x90)
    c.rel32("back")  # backward: negative
    c.rel8("back")
    c.rel32("ahead")  # forward: positive
    c.abs64("back")
    c.emit(0x90)
    c.label("ahead")
    linked = c.link()
    assert linked[2:6] == struct.pack("<i", 0 - 6)
    assert linked[6:7] == struct.pack("<b", 0 - 7)
    assert linked[7:11] == struct.pack("<i", 20 - 11)
    assert linked[11:19] == struct.pack("<Q", BASE + CODE_OFFSET)


def test_a_program_assembles() -> None:
    image = trampoline.program(5, b"exec /bin/x: errno=", b"", mark_cloexec=True)
    assert image.startswith(b"\x7fELF") and len(image) > CODE_OFFSET


def test_the_init_does_not_load_struct() -> None:
    probe = (
        f"import sys; sys.path += [{str(REPO)!r}]\n"
        "import engine.commands.create, engine.init\n"
        "print(sorted(m for m in sys.modules if m in ('struct', '_struct')))\n"
    )
    out = subprocess.run([sys.executable, "-S", "-I", "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
