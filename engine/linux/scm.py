"""File descriptors passed over UNIX sockets (SCM_RIGHTS), as the bytes of the control message.

Not array.array("i"): array imports collections.abc (~1.5 ms of every `engine create`), and a C int is four bytes
in the machine's order on every platform engine runs on.
"""

from __future__ import annotations

import _socket
import sys

FD_SIZE = 4  # sizeof(int): one fd in a cmsg's data

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from collections.abc import Iterable


def rights(*fds: int) -> list[tuple[int, int, bytes]]:
    """The ancillary data of sendmsg that passes `fds`."""
    data = b"".join(fd.to_bytes(FD_SIZE, sys.byteorder, signed=True) for fd in fds)
    return [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, data)]


def space(count: int) -> int:
    """The ancillary buffer size recvmsg needs for `count` fds."""
    return _socket.CMSG_SPACE(count * FD_SIZE)


def received_fds(ancillary: Iterable[tuple[int, int, bytes]]) -> list[int]:
    """Every fd that arrived in recvmsg's ancillary data (the caller owns them all, even when it wanted fewer)."""
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            whole = len(data) - len(data) % FD_SIZE
            fds += [int.from_bytes(data[i : i + FD_SIZE], sys.byteorder, signed=True) for i in range(0, whole, FD_SIZE)]
    return fds
