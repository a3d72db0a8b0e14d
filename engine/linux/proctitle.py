"""Rename this process as `ps` and /proc show it: its comm and its command line.

The container's init is the forked `engine create` interpreter, so until it execs the user's program it would
show create's whole command line, and an operator would see a second `create` that never ends. runc's init
shows as `runc init`; ours becomes `engine init <id>`.

- comm (/proc/<pid>/comm, `ps -o comm`, `top`): prctl(PR_SET_NAME), at most 15 bytes.
- the command line (/proc/<pid>/cmdline, `ps -f`): the kernel reads it from the process's own memory, the
  argv strings the kernel copied onto the stack at exec, between the addresses arg_start and arg_end (fields
  48 and 49 of /proc/self/stat). prctl(PR_SET_MM_ARG_START, ...) could point it elsewhere but needs
  CAP_SYS_RESOURCE, which a container host may not give us; so, as the setproctitle library does, the new
  arguments are written over the old ones in place, NUL-separated, and the rest of the block is zeroed. The
  title must fit in the old block: it is cut to fit (the create command line it replaces is always longer).
  Python's own copies (sys.argv, sys.orig_argv) are not touched.
"""

from __future__ import annotations

from engine.linux import ffi
from engine.linux import syscalls as sc

TASK_COMM_LEN = 16  # including the terminating NUL
# /proc/self/stat fields, numbered as in proc(5) (1 = pid); counted here after the ")" that ends comm.
_ARG_START_FIELD = 48
_FIRST_FIELD_AFTER_COMM = 3


def set_title(args: list[str]) -> bool:
    """Make the process show as `args` (joined by spaces in ps). False if the command line could not be
    rewritten (no /proc): the process works the same, only its name is wrong."""
    name = ffi.create_string_buffer(" ".join(args).encode()[: TASK_COMM_LEN - 1])
    sc.prctl(sc.PR_SET_NAME, ffi.addressof(name))
    area = argv_area()
    if area is None:
        return False
    start, end = area
    size = end - start
    title = b"\0".join(arg.encode() for arg in args)[: size - 1]
    (ffi.c_char * size).from_address(start).raw = title.ljust(size, b"\0")  # our own argv strings, in place
    return True


def argv_area() -> tuple[int, int] | None:
    """(arg_start, arg_end): where this process's argv strings are in its memory."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 1 :].split()  # comm may hold spaces and parentheses
    first = _ARG_START_FIELD - _FIRST_FIELD_AFTER_COMM
    try:
        start, end = int(fields[first]), int(fields[first + 1])
    except (IndexError, ValueError):
        return None
    return (start, end) if 0 < start < end else None
