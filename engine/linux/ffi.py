"""The part of ctypes engine uses, made straight from `_ctypes`, the C module under it.

`import ctypes` costs every `engine create` ~2-3 ms of CPU in its forked child (the init's set-up code calls libc
through it): ctypes/__init__.py defines some forty C types, checks their sizes with `struct`, and imports
`types` and ctypes._endian's byte-order classes. engine needs a dozen of those types, the libc handle, and a few
helpers, which `_ctypes` itself provides (byref, sizeof, addressof, get_errno, POINTER, Structure, Array).

The types here are `_ctypes` simple types of their own, so they are not ctypes' classes: code that mixes them
(a ctypes.c_int passed where an argtypes entry says ffi.c_int) is refused by the conversion. Everything in
engine/linux uses this module; nothing outside it calls C.
"""

from __future__ import annotations

import _ctypes
from _ctypes import POINTER, Array, Structure, addressof, byref, get_errno, sizeof

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    _Int = _ctypes._SimpleCData[int]
    _Bytes = _ctypes._SimpleCData[bytes]
    _BytesOrNull = _ctypes._SimpleCData[bytes | None]
    _Address = _ctypes._SimpleCData[int | None]
else:  # not subscriptable at run time
    _Int = _Bytes = _BytesOrNull = _Address = _ctypes._SimpleCData

__all__ = [
    "CDLL",
    "POINTER",
    "Array",
    "Structure",
    "addressof",
    "byref",
    "c_char",
    "c_char_p",
    "c_int",
    "c_int32",
    "c_int64",
    "c_long",
    "c_size_t",
    "c_uint",
    "c_uint32",
    "c_uint64",
    "c_ulong",
    "c_ushort",
    "c_void_p",
    "create_string_buffer",
    "get_errno",
    "sizeof",
]


# The simple types, by the struct-module codes _ctypes knows them by. Direct subclasses of _SimpleCData, as
# ctypes' own are: a function whose restype is one of them returns a plain int (bytes for c_char_p).
class c_char(_Bytes):
    _type_ = "c"


class c_char_p(_BytesOrNull):
    _type_ = "z"


class c_void_p(_Address):
    _type_ = "P"


class c_ushort(_Int):
    _type_ = "H"


class c_int(_Int):
    _type_ = "i"


class c_uint(_Int):
    _type_ = "I"


class c_long(_Int):
    _type_ = "l"


class c_ulong(_Int):
    _type_ = "L"


class c_int64(_Int):
    _type_ = "q"


class c_uint64(_Int):
    _type_ = "Q"


# Linux (LP64 and ILP32 alike): int is 32 bits, and size_t is as wide as long and a pointer.
c_int32 = c_int
c_uint32 = c_uint
c_size_t = c_ulong
if sizeof(c_int) != 4 or sizeof(c_ulong) != sizeof(c_void_p):
    raise ImportError("engine.linux.ffi: a C ABI other than Linux's (int 32 bits, long as wide as a pointer)")


def create_string_buffer(init: bytes | int, size: int | None = None) -> Array[c_char]:
    """A zeroed char array of `init` bytes, or one of `size` bytes (default: len(init) + 1, so a NUL follows)
    that begins with the bytes `init` (any bytes: a BPF program too)."""
    if isinstance(init, int):
        return (c_char * init)()
    buf = (c_char * (len(init) + 1 if size is None else size))()
    buf.raw = init
    return buf


class CDLL:
    """A shared library opened with dlopen (None: the program itself, so libc), whose functions are attributes:
    `lib.mount(...)`. Each function object is made once and kept, so that its argtypes and restype, once set,
    stay. Functions return a C int unless given a restype; errno is kept for get_errno()."""

    def __init__(self, name: str | None, use_errno: bool = False) -> None:
        flags = _ctypes.FUNCFLAG_CDECL | (_ctypes.FUNCFLAG_USE_ERRNO if use_errno else 0)

        class Function(_ctypes.CFuncPtr):
            _flags_ = flags
            _restype_ = c_int

        self._function = Function
        self._handle = _ctypes.dlopen(name, _ctypes.RTLD_LOCAL)  # type: ignore[arg-type]  # None: the program

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        function = self._function((name, self))  # type: ignore[arg-type]  # _ctypes reads self._handle
        function.__name__ = name
        setattr(self, name, function)
        return function
