"""The container's pseudoterminal (config.md `process.terminal`): allocated from the container's own devpts after
pivot_root, bound on /dev/console, made the process's controlling terminal and its fds 0, 1 and 2; the master goes
to whoever holds the terminal on the host (engine/console.py draws the hand-off).

Apart from engine/console.py, for the sake of `engine create`'s own process: it checks the terminal and forwards
the master (console.py) but never allocates one, so it does not load what this needs (engine.linux.kernel, ctypes).
The container's init and exec's process import this before pivot_root / setns(mnt): after that the engine's
files are out of sight (tests/integration/test_late_imports.py).
"""

from __future__ import annotations

import _socket
import errno
import fcntl
import os
import stat
import struct
import termios

from engine.console import (
    CONSOLE_SOCKET_REQUIRED,
    PTMX_RDEV,
    ConsoleError,
    send_master,
    set_window_size,
)
from engine.linux import kernel
from engine.linux.syscalls import DEVPTS_SUPER_MAGIC, TIOCGPTN, TIOCGPTPEER, TIOCSPTLCK, fs_type

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from collections.abc import Callable

    from engine.spec.typed import ConsoleSize

PTMX_INO = 2  # devpts creates its ptmx node with inode number 2 (fs/devpts/inode.c mknod_ptmx)
PTY_SLAVE_MAJOR = 136  # UNIX98_PTY_SLAVE_MAJOR: /dev/pts/N is char 136:N


def _reopen(handle: int, path: str, flags: int) -> int:
    """Open the inode an O_PATH handle names. Through /proc/self/fd when /proc is there, so that what we
    checked is what we open (the path could be swapped in between); otherwise by path, checked after."""
    try:
        return os.open(f"/proc/self/fd/{handle}", flags)
    except FileNotFoundError:
        pass  # no /proc in this container
    fd = os.open(path, flags | os.O_NOFOLLOW)
    want, got = os.fstat(handle), os.fstat(fd)
    if (want.st_dev, want.st_ino) != (got.st_dev, got.st_ino):
        os.close(fd)
        raise ConsoleError(f"process.terminal: {path} changed while it was being opened")
    return fd


def _check_devpts_node(fd: int, path: str, rdev: int, ino: int | None) -> None:
    st = os.fstat(fd)
    if fs_type(fd) != DEVPTS_SUPER_MAGIC:
        raise ConsoleError(
            f"process.terminal: {path} is not on a devpts mount (does config.json mount devpts at /dev/pts?)"
        )
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != rdev or (ino is not None and st.st_ino != ino):
        raise ConsoleError(
            f"process.terminal: {path} is not the expected device {os.major(rdev)}:{os.minor(rdev)} "
            f"(found {'char' if stat.S_ISCHR(st.st_mode) else 'non-device'} "
            f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}, inode {st.st_ino})"
        )


def _open_checked(path: str, flags: int, rdev: int, ino: int | None) -> int:
    """O_PATH first: never open() an inode (a fifo, some other device) before we know it is the right one."""
    try:
        handle = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        raise ConsoleError(
            f"process.terminal: {path}: {err.strerror} (does config.json mount devpts at /dev/pts?)"
        ) from None
    try:
        _check_devpts_node(handle, path, rdev, ino)
        return _reopen(handle, path, flags)
    except OSError as err:
        raise ConsoleError(f"process.terminal: {path}: {err.strerror or err}") from None
    finally:
        os.close(handle)


def pty_number(master: int) -> int:
    """N of /dev/pts/N for a pty master (ptsname(3) without the path)."""
    number: int = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, bytes(4)))[0]
    return number


def open_pty(pts: str = "/dev/pts") -> tuple[int, int, str]:
    """A new pty pair from the devpts instance mounted at `pts`: (master, slave, slave path).

    The master comes from <pts>/ptmx, not /dev/ptmx: /dev/ptmx may be a device node of the host's devpts
    (or a symlink anywhere), and a pty from the host's instance would not be the container's /dev/pts/N.
    Both fds are O_NOCTTY (we choose the controlling terminal explicitly) and O_CLOEXEC.
    """
    flags = os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC
    master = _open_checked(f"{pts}/ptmx", flags, PTMX_RDEV, PTMX_INO)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))  # unlockpt(3): the slave cannot be opened before
        number = pty_number(master)
        slave_path = f"{pts}/{number}"
        try:
            slave = fcntl.ioctl(master, TIOCGPTPEER, flags)  # race-free: no path, no lookup in a shared dir
        except OSError as err:
            if err.errno not in (errno.EINVAL, errno.ENOTTY):  # what a pre-4.13 kernel answers
                raise
            slave = _open_checked(slave_path, flags, os.makedev(PTY_SLAVE_MAJOR, number), None)
    except OSError as err:
        os.close(master)
        raise ConsoleError(f"process.terminal: cannot allocate a pty: {err.strerror or err}") from None
    except BaseException:
        os.close(master)
        raise
    return master, slave, slave_path


def mount_console(slave: int, slave_path: str, target: str = "/dev/console") -> None:
    """config-linux.md: /dev/console is set up by bind mounting the pty slave onto it (runc mountConsole).

    The mount point is an empty regular file we create. An existing node is used as a mount point without
    being opened (O_PATH): opening a stray character device could have side effects.
    """
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        os.fchmod(fd, 0o666)  # O_CREAT honours the umask
    except FileExistsError:
        fd = os.open(target, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        mode = os.fstat(fd).st_mode
        if stat.S_ISLNK(mode) or stat.S_ISDIR(mode):
            os.close(fd)
            kind = "symlink" if stat.S_ISLNK(mode) else "directory"
            raise ConsoleError(f"process.terminal: {target} is a {kind}, cannot bind the console onto it") from None
    except OSError as err:
        raise ConsoleError(f"process.terminal: cannot create {target}: {err.strerror}") from None
    try:
        # By fd both ways (open_tree + move_mount): no path of the container's, /proc/self/fd included, is
        # looked up, so nothing can swap the pty or the target for a procfs file (CVE-2025-52565).
        kernel.KERNEL.bind_fd(slave, fd)
    except OSError as err:
        raise ConsoleError(f"process.terminal: bind mounting the console on {target}: {err.strerror}") from None
    finally:
        os.close(fd)


def chown_console(slave: int, uid: int) -> None:
    """Give the slave to the process's user, keeping the group devpts chose (its gid= option, usually tty):
    runc's fixStdioPermissions, so a non-root process can reopen its own terminal (/dev/pts/N).

    Errors that mean "not ours to change" are ignored, as runc does: EINVAL (uid not mapped in a user
    namespace), EPERM (owner not mapped), EROFS.
    """
    if os.fstat(slave).st_uid == uid:
        return
    try:
        kernel.KERNEL.chown_fd(slave, uid, -1)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EPERM, errno.EROFS):
            raise ConsoleError(f"process.terminal: cannot give the console to uid {uid}: {err.strerror}") from None


def make_controlling_terminal(slave: int) -> None:
    """Become a session leader, take `slave` as the controlling terminal, and make it fds 0, 1 and 2.

    setsid() first: TIOCSCTTY only works for a session leader without a terminal; this also makes our
    process group the terminal's foreground group, so ^C on the master signals the container's process.
    The init is not a process group leader (it was forked), so setsid() succeeds; if we already lead a
    session (EPERM because pid == pgid == sid), that is fine too.
    """
    try:
        os.setsid()
    except PermissionError:
        if os.getsid(0) != os.getpid():
            raise ConsoleError("process.terminal: cannot start a new session (setsid: EPERM)") from None
    try:
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)  # 0: do not steal it from another session
    except OSError as err:
        raise ConsoleError(f"process.terminal: cannot make the pty the controlling terminal: {err.strerror}") from None
    for fd in (0, 1, 2):
        os.dup2(slave, fd)  # dup2 makes the copies inheritable: they survive exec
        os.set_inheritable(fd, True)  # ...except when slave == fd, where dup2 leaves O_CLOEXEC alone
    if slave > 2:
        os.close(slave)


def setup_console(
    hand_off: _socket.socket | Callable[[int], None] | None,
    console_size: ConsoleSize | None,
    *,
    uid: int | None = None,
    mount: bool = True,
    pts: str = "/dev/pts",
) -> None:
    """The container's half of process.terminal; call after pivot_root, before the root is made read-only.

    hand_off:     where the master goes: a connected --console-socket (`exec`: connect_console_socket() on
                  the host before forking; runc's format, then closed here), or a function given the master
                  (the init: back over the create channel, and `engine create` forwards it, forward_master).
    console_size: process.consoleSize ({"height": H, "width": W}); applied when both are non-zero (runc).
    uid:          process.user.uid: the slave is chowned to it (runc's fixStdioPermissions).
    mount:        bind the slave on /dev/console (the container's init; `exec --tty` passes False).
    pts:          where the container's devpts is mounted (tests point it elsewhere).

    On return fds 0, 1 and 2 are the slave, which is our controlling terminal; the master is on its way
    to the receiver and no longer open here.
    """
    if hand_off is None:
        raise ConsoleError(CONSOLE_SOCKET_REQUIRED)
    sock = hand_off if isinstance(hand_off, _socket.socket) else None
    try:
        master, slave, slave_path = open_pty(pts)
        try:
            if console_size and console_size.get("height") and console_size.get("width"):
                set_window_size(master, int(console_size["height"]), int(console_size["width"]))
            if mount:
                mount_console(slave, slave_path)
            if uid is not None:
                chown_console(slave, uid)
            if sock is not None:
                send_master(sock, master)
            else:
                assert callable(hand_off)
                hand_off(master)
        except BaseException:
            os.close(slave)
            raise
        finally:
            os.close(master)  # the receiver's copy is in flight; ours would keep the pty alive for nothing
    finally:
        if sock is not None:
            sock.close()
    make_controlling_terminal(slave)
