"""The thin layer that touches the kernel through libc (ctypes). Nothing outside engine/linux calls ctypes."""
