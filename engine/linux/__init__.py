"""The thin layer that touches the kernel through libc (engine/linux/ffi.py: the part of ctypes engine uses). Nothing
outside engine/linux calls C."""
