"""engine/linux/ffi.py: the few C types and the libc handle engine uses, made from _ctypes without ctypes."""

from __future__ import annotations

import errno
import os

from engine.linux import ffi
from engine.linux.libc import libc


def test_a_function_is_made_once_so_its_argtypes_and_restype_stay() -> None:
    assert libc.getpid is libc.getpid
    libc.strlen.argtypes = [ffi.c_char_p]
    libc.strlen.restype = ffi.c_size_t
    assert libc.strlen(b"engine") == 6
    assert libc.strlen.argtypes == [ffi.c_char_p]


def test_results_are_plain_ints_and_errno_is_kept() -> None:
    assert libc.getpid() == os.getpid()
    libc.syscall.restype = ffi.c_long
    assert libc.syscall(ffi.c_long(39)) == os.getpid()  # SYS_getpid on x86_64; the restype is a plain int
    assert libc.close(ffi.c_int(-1)) == -1
    assert ffi.get_errno() == errno.EBADF


def test_string_buffers() -> None:
    assert ffi.create_string_buffer(3).raw == b"\0\0\0"
    assert ffi.create_string_buffer(b"ab").raw == b"ab\0"  # a NUL after the bytes
    program = b"\x06\0\0\0\0\0\xff\x7f"  # binary, NULs inside: all of it, and no more
    assert ffi.create_string_buffer(program, len(program)).raw == program


def test_the_c_abi_sizes() -> None:
    sizes = [ffi.c_int, ffi.c_uint, ffi.c_ushort, ffi.c_long, ffi.c_uint64, ffi.c_int64, ffi.c_size_t, ffi.c_void_p]
    assert [ffi.sizeof(t) for t in sizes] == [4, 4, 2, 8, 8, 8, 8, 8]

    class Pair(ffi.Structure):
        _fields_ = [("first", ffi.c_uint64), ("second", ffi.c_int)]

    pair = Pair(1, 2)
    assert ffi.sizeof(pair) == 16 and (pair.first, pair.second) == (1, 2)
    assert ffi.addressof(pair) != 0
