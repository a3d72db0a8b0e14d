"""The last execve goes through a tiny sealed program, so the container never executes the host's interpreter
(CVE-2019-5736).

The container's init and `engine exec`'s process are the host's Python until their final execve. While the
kernel carries that execve out it resolves paths the image chose on the process's behalf: a `#!` line, an ELF's
PT_INTERP, or args[0] itself. Any of them may be /proc/self/exe (or /proc/1/exe, /proc/self/map_files/...),
which names the executable of the process doing the exec: the host's interpreter. With a C library in the
image (any Debian image) the container's pid 1 would then *be* the host's Python, and a container process
holding /proc/1/exe could reopen it for writing once nothing runs it (ETXTBSY is no defence; runc's memfd
clone exists for this).

So the final execve is made through a trampoline: a 400-byte static x86_64 program written into a memfd,
sealed (F_SEAL_WRITE|SHRINK|GROW|SEAL: nobody can change it, not even root), and executed by fd (execveat
AT_EMPTY_PATH, no path). Its whole job: mark the status fd close-on-exec, execve(argv[0], argv+1, envp), and if
that fails write "exec <program>: errno=N" to the status fd and exit 127. While the kernel resolves the image's
paths, /proc/self/exe is the sealed memfd: an image that points at it gets the trampoline again (which stops at
once: it wants at least two arguments) and a file nobody can write.

The container's init can also hand the wait for `engine start` to the trampoline (`release`), so that `start`
waits only for the trampoline's few system calls and the program's execve, not for the teardown of a Python image
(~1.4 ms): the init becomes the process (user, capabilities, no_new_privs) first, then execs the trampoline, which

- names itself after the init (prctl PR_SET_NAME; its argv is the init's title already: ps shows `engine init <id>`
  for a created container, as before);
- installs handlers that exit 128+N for the signals the init handled while waiting (pid 1 of a pid namespace
  drops a signal left at its default action), then unblocks them (the init blocked them across its execve, so
  one sent meanwhile is pending, not lost);
- opens the exec fifo for writing through its private procfs (openat(procfs fd, "<pid>/fd/<O_PATH fd>"): the
  magic link of its own fd, never the container's /proc); this blocks until `start` opens the read end;
- puts the writable end on the O_PATH fd's number (dup3, close-on-exec: the O_PATH fd to a host file is gone,
  CVE-2016-9962), closes the procfs fd;
- setresgid(gid, gid, gid): the init exec'd the trampoline with its effective gid different from its real one,
  which makes the kernel exec it non-dumpable (fs.suid_dumpable) and keeps ptrace-style access to it (its
  /proc/1/fd, the procfs and O_PATH fds) to those with CAP_SYS_PTRACE over it, as the waiting Python init was;
  the change of ids keeps it non-dumpable until the program's execve;
- writes "0" and execs the program, whose path, argv and environment are in its image (Release; its own
  environment is empty), reporting a failure on the fifo as above. An image that points at /proc/self/exe gets
  this trampoline again, which stops at once: its procfs fd is closed by then.

The machine code below is assembled by hand (no compiler on the build path); each instruction is listed next to
its bytes. The plain trampoline's argv is [program path, argv[0] of the program, argv[1], ...].
"""

from __future__ import annotations

import errno
import fcntl
import os

from engine.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

BASE = 0x400000
MFD_CLOEXEC = 0x0001
MFD_ALLOW_SEALING = 0x0002
MFD_EXEC = 0x0010  # Linux 6.3: ask for an executable memfd explicitly (vm.memfd_noexec)
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE, F_SEAL_EXEC = 0x1, 0x2, 0x4, 0x8, 0x20
F_ADD_SEALS = 1033
SA_RESTORER = 0x04000000
PR_SET_NAME = 15
TASK_COMM_LEN = 16
CODE_OFFSET = 64 + 2 * 56  # the code follows the ELF header and its two program headers (_elf)
MESSAGE_PATH_MAX = 512  # the program's path quoted in a failure message is cut here


class _Code:
    """Machine code with labels, and rip-relative references to them resolved at the end."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.labels: dict[str, int] = {}
        self.fixups: list[tuple[int, str, str]] = []  # (offset of a 32- or 8-bit field, label, kind)

    def emit(self, *parts: bytes | int) -> None:
        for part in parts:
            self.buf += bytes([part]) if isinstance(part, int) else part

    def label(self, name: str) -> None:
        self.labels[name] = len(self.buf)

    def rel32(self, name: str) -> None:
        self.fixups.append((len(self.buf), name, "rel32"))
        self.buf += b"\0\0\0\0"

    def rel8(self, name: str) -> None:
        self.fixups.append((len(self.buf), name, "rel8"))
        self.buf += b"\0"

    def abs64(self, name: str) -> None:
        self.fixups.append((len(self.buf), name, "abs64"))
        self.buf += bytes(8)

    def link(self) -> bytes:
        for offset, name, kind in self.fixups:
            if kind == "abs64":  # where the label is once loaded: the code starts CODE_OFFSET into the image
                self.buf[offset : offset + 8] = _u64(BASE + CODE_OFFSET + self.labels[name])
            elif kind == "rel32":
                self.buf[offset : offset + 4] = _imm32(self.labels[name] - (offset + 4))
            else:
                self.buf[offset : offset + 1] = (self.labels[name] - (offset + 1)).to_bytes(1, "little", signed=True)
        return bytes(self.buf)


# Little-endian fields with int.to_bytes, not the struct module: the init would import struct (and _struct) for
# these alone, ~0.2 ms of every create's child for a config without a terminal or seccomp (tests/unit/
# test_trampoline_image.py). Out of range raises OverflowError, as struct.pack raised struct.error.
def _imm32(value: int) -> bytes:
    return value.to_bytes(4, "little", signed=True)


def _u16(value: int) -> bytes:
    return value.to_bytes(2, "little")


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "little")


def program(
    status_fd: int,
    prefix: bytes,
    suffix: bytes,
    *,
    mark_cloexec: bool,
    release: Release | None = None,
) -> bytes:
    """The trampoline as an ELF executable. status_fd < 0: report nothing, just exit 127 on failure. release: the
    trampoline waits for `engine start` itself, then its status fd is the exec fifo it opened (see the module)."""
    c = _Code()
    if release is not None:
        _wait_for_start(c, release, status_fd)
        c.emit(0x48, 0x8D, 0x3D)  # lea rdi, [rip+path]         the program, its argv and envp: in this image
        c.rel32("path")
        c.emit(0x48, 0x8D, 0x35)  # lea rsi, [rip+argv]
        c.rel32("argv")
        c.emit(0x48, 0x8D, 0x15)  # lea rdx, [rip+envp]
        c.rel32("envp")
        c.emit(0xB8, _imm32(59))  # mov eax, SYS_execve
        c.emit(0x0F, 0x05)  # syscall                    returns only on failure: rax = -errno
    else:
        if status_fd >= 0 and mark_cloexec:
            # fcntl(status_fd, F_SETFD, FD_CLOEXEC): it must stay open in us but close when the program runs.
            c.emit(0xBF, _imm32(status_fd))  # mov edi, status_fd
            c.emit(0xBE, _imm32(2))  # mov esi, F_SETFD
            c.emit(0xBA, _imm32(1))  # mov edx, FD_CLOEXEC
            c.emit(0xB8, _imm32(72))  # mov eax, SYS_fcntl
            c.emit(0x0F, 0x05)  # syscall
        c.emit(0x48, 0x8B, 0x0C, 0x24)  # mov rcx, [rsp]             argc
        c.emit(0x48, 0xC7, 0xC0, _imm32(-errno.EINVAL))  # mov rax, -EINVAL
        c.emit(0x48, 0x83, 0xF9, 0x02)  # cmp rcx, 2
        c.emit(0x72)  # jb report                  fewer than 2 arguments: refuse
        c.rel8("report")
        c.emit(0x48, 0x8B, 0x7C, 0x24, 0x08)  # mov rdi, [rsp+8]           argv[0]: the program
        c.emit(0x48, 0x8D, 0x74, 0x24, 0x10)  # lea rsi, [rsp+16]          &argv[1]: its argv
        c.emit(0x48, 0x8D, 0x54, 0xCC, 0x10)  # lea rdx, [rsp+rcx*8+16]    envp
        c.emit(0xB8, _imm32(59))  # mov eax, SYS_execve
        c.emit(0x0F, 0x05)  # syscall                    returns only on failure: rax = -errno
    c.label("report")
    if status_fd >= 0:
        c.emit(0x48, 0xF7, 0xD8)  # neg rax
        c.emit(0x48, 0x3D, _imm32(255))  # cmp rax, 255
        c.emit(0x76, 0x05)  # jbe +5
        c.emit(0xB8, _imm32(255))  # mov eax, 255
        c.emit(0x48, 0x8D, 0x04, 0x40)  # lea rax, [rax+rax*2]       3 digits per errno in the table
        c.emit(0x48, 0x8D, 0x35)  # lea rsi, [rip+digits]
        c.rel32("digits")
        c.emit(0x48, 0x01, 0xF0)  # add rax, rsi
        c.emit(0x48, 0x83, 0xEC, 0x30)  # sub rsp, 48                struct iovec[3]
        c.emit(0x48, 0x8D, 0x35)  # lea rsi, [rip+prefix]
        c.rel32("prefix")
        c.emit(0x48, 0x89, 0x34, 0x24)  # mov [rsp], rsi
        c.emit(0x48, 0xC7, 0x44, 0x24, 0x08, _imm32(len(prefix)))  # mov qword [rsp+8], len(prefix)
        c.emit(0x48, 0x89, 0x44, 0x24, 0x10)  # mov [rsp+16], rax
        c.emit(0x48, 0xC7, 0x44, 0x24, 0x18, _imm32(3))  # mov qword [rsp+24], 3
        c.emit(0x48, 0x8D, 0x35)  # lea rsi, [rip+suffix]
        c.rel32("suffix")
        c.emit(0x48, 0x89, 0x74, 0x24, 0x20)  # mov [rsp+32], rsi
        c.emit(0x48, 0xC7, 0x44, 0x24, 0x28, _imm32(len(suffix)))  # mov qword [rsp+40], len(suffix)
        c.emit(0xBF, _imm32(status_fd))  # mov edi, status_fd
        c.emit(0x48, 0x89, 0xE6)  # mov rsi, rsp
        c.emit(0xBA, _imm32(3))  # mov edx, 3
        c.emit(0xB8, _imm32(20))  # mov eax, SYS_writev        one write: one packet on a SEQPACKET socket
        c.emit(0x0F, 0x05)  # syscall
    c.label("quit")
    c.emit(0xBF, _imm32(127))  # mov edi, 127
    c.emit(0xB8, _imm32(231))  # mov eax, SYS_exit_group
    c.emit(0x0F, 0x05)  # syscall
    c.emit(0xF4)  # hlt                        (not reached)
    if release is not None:
        c.label("on_signal")  # the handler: rdi = the signal's number
        c.emit(0x81, 0xC7, _imm32(128))  # add edi, 128              the status of a default-action death
        c.emit(0xB8, _imm32(231))  # mov eax, SYS_exit_group
        c.emit(0x0F, 0x05)  # syscall
        c.label("sigreturn")  # sa_restorer: x86_64 refuses a handler without one (never reached: we exit)
        c.emit(0xB8, _imm32(15))  # mov eax, SYS_rt_sigreturn
        c.emit(0x0F, 0x05)  # syscall
        c.label("fifo_link")
        c.emit(release.fifo_link + b"\0")
        c.label("ready")
        c.emit(b"0")
        c.label("comm")
        c.emit(_c_string(" ".join(release.title).encode()[: TASK_COMM_LEN - 1]))
        _string_table(c, "argv", release.argv)
        _string_table(c, "envp", release.env)
        c.label("path")
        c.emit(_c_string(release.path))
    c.label("prefix")
    c.emit(prefix)
    c.label("suffix")
    c.emit(suffix)
    c.label("digits")
    c.emit("".join(f"{n:03d}" for n in range(256)).encode())
    return _elf(c.link())


@record(frozen=True)
class Release:
    """What the trampoline needs to wait for `engine start` itself (see the module). The program, its argv and
    environment are in the image: the waiting trampoline's own argv is the init's title ("engine init <id>", what
    ps shows of a created container), and its environment is empty."""

    proc_fd: int  # the root of the init's private procfs, inherited; closed once the fifo is open
    fifo_link: bytes  # "<pid>/fd/<the O_PATH fd of the fifo>", relative to that root
    signals: tuple[int, ...]  # exit 128+N on these while waiting (the init blocked them across its execve)
    path: bytes  # the program
    argv: tuple[bytes, ...]
    env: tuple[bytes, ...]  # "KEY=value"
    title: tuple[str, ...]  # the waiting process's argv; its name (comm, by prctl) is the start of it


def _c_string(value: bytes) -> bytes:
    if b"\0" in value:
        raise ValueError("embedded null byte")  # what os.execve says of one
    return value + b"\0"


def _string_table(c: _Code, name: str, strings: tuple[bytes, ...]) -> None:
    """A NULL-terminated array of pointers (execve's argv, envp) at label `name`, then the strings."""
    c.label(name)
    for n in range(len(strings)):
        c.abs64(f"{name}.{n}")
    c.emit(bytes(8))
    for n, value in enumerate(strings):
        c.label(f"{name}.{n}")
        c.emit(_c_string(value))


def _wait_for_start(c: _Code, release: Release, status_fd: int) -> None:
    """The code before the program's execve when the trampoline releases itself: the signals handled, the fifo
    opened (blocks until `engine start`), the gid made whole again, "0" written. A failure before "0": exit 127
    (`start` then reports that the init exited)."""
    c.emit(0xBF, _imm32(PR_SET_NAME))  # mov edi, PR_SET_NAME
    c.emit(0x48, 0x8D, 0x35)  # lea rsi, [rip+comm]
    c.rel32("comm")
    c.emit(0xB8, _imm32(157))  # mov eax, SYS_prctl          the kernel named us after the memfd
    c.emit(0x0F, 0x05)  # syscall
    c.emit(0x48, 0x83, 0xEC, 0x20)  # sub rsp, 32                struct sigaction
    c.emit(0x48, 0x8D, 0x05)  # lea rax, [rip+on_signal]
    c.rel32("on_signal")
    c.emit(0x48, 0x89, 0x04, 0x24)  # mov [rsp], rax             sa_handler
    c.emit(0x48, 0xC7, 0x44, 0x24, 0x08, _imm32(SA_RESTORER))  # mov qword [rsp+8], SA_RESTORER  sa_flags
    c.emit(0x48, 0x8D, 0x05)  # lea rax, [rip+sigreturn]
    c.rel32("sigreturn")
    c.emit(0x48, 0x89, 0x44, 0x24, 0x10)  # mov [rsp+16], rax          sa_restorer
    c.emit(0x48, 0xC7, 0x44, 0x24, 0x18, _imm32(0))  # mov qword [rsp+24], 0      sa_mask: none
    for sig in release.signals:
        c.emit(0xBF, _imm32(sig))  # mov edi, sig
        c.emit(0x48, 0x89, 0xE6)  # mov rsi, rsp               the new action
        c.emit(0x31, 0xD2)  # xor edx, edx               no old action wanted
        c.emit(0x41, 0xBA, _imm32(8))  # mov r10d, 8               sizeof(sigset_t)
        c.emit(0xB8, _imm32(13))  # mov eax, SYS_rt_sigaction
        c.emit(0x0F, 0x05)  # syscall
    c.emit(0x48, 0xC7, 0x04, 0x24, _imm32(0))  # mov qword [rsp], 0         an empty signal set
    c.emit(0xBF, _imm32(2))  # mov edi, SIG_SETMASK
    c.emit(0x48, 0x89, 0xE6)  # mov rsi, rsp
    c.emit(0x31, 0xD2)  # xor edx, edx
    c.emit(0x41, 0xBA, _imm32(8))  # mov r10d, 8
    c.emit(0xB8, _imm32(14))  # mov eax, SYS_rt_sigprocmask  nothing blocked: what the program starts with
    c.emit(0x0F, 0x05)  # syscall
    c.emit(0x48, 0x83, 0xC4, 0x20)  # add rsp, 32
    c.emit(0xBF, _imm32(release.proc_fd))  # mov edi, proc_fd
    c.emit(0x48, 0x8D, 0x35)  # lea rsi, [rip+fifo_link]
    c.rel32("fifo_link")
    c.emit(0xBA, _imm32(os.O_WRONLY | os.O_CLOEXEC))  # mov edx, O_WRONLY|O_CLOEXEC
    c.emit(0x45, 0x31, 0xD2)  # xor r10d, r10d
    c.emit(0xB8, _imm32(257))  # mov eax, SYS_openat         blocks until `start` opens the read end
    c.emit(0x0F, 0x05)  # syscall
    c.emit(0x48, 0x85, 0xC0)  # test rax, rax
    c.emit(0x0F, 0x88)  # js quit
    c.rel32("quit")
    c.emit(0x89, 0xC3)  # mov ebx, eax               the fifo's write end (rbx survives syscalls)
    c.emit(0x89, 0xDF)  # mov edi, ebx
    c.emit(0xBE, _imm32(status_fd))  # mov esi, status_fd          the O_PATH fd's number: closes it
    c.emit(0xBA, _imm32(os.O_CLOEXEC))  # mov edx, O_CLOEXEC
    c.emit(0xB8, _imm32(292))  # mov eax, SYS_dup3
    c.emit(0x0F, 0x05)  # syscall
    c.emit(0x48, 0x85, 0xC0)  # test rax, rax
    c.emit(0x0F, 0x88)  # js quit
    c.rel32("quit")
    c.emit(0x89, 0xDF)  # mov edi, ebx
    c.emit(0xB8, _imm32(3))  # mov eax, SYS_close
    c.emit(0x0F, 0x05)  # syscall
    c.emit(0xBF, _imm32(release.proc_fd))  # mov edi, proc_fd
    c.emit(0xB8, _imm32(3))  # mov eax, SYS_close           the procfs: nothing of it reaches the program
    c.emit(0x0F, 0x05)  # syscall
    c.emit(0xB8, _imm32(104))  # mov eax, SYS_getgid
    c.emit(0x0F, 0x05)  # syscall
    c.emit(0x89, 0xC7)  # mov edi, eax
    c.emit(0x89, 0xC6)  # mov esi, eax
    c.emit(0x89, 0xC2)  # mov edx, eax
    c.emit(0xB8, _imm32(119))  # mov eax, SYS_setresgid      real = effective = saved: the program's gid
    c.emit(0x0F, 0x05)  # syscall
    c.emit(0x48, 0x85, 0xC0)  # test rax, rax
    c.emit(0x0F, 0x85)  # jnz quit
    c.rel32("quit")
    c.emit(0xBF, _imm32(status_fd))  # mov edi, status_fd
    c.emit(0x48, 0x8D, 0x35)  # lea rsi, [rip+ready]
    c.rel32("ready")
    c.emit(0xBA, _imm32(1))  # mov edx, 1
    c.emit(0xB8, _imm32(1))  # mov eax, SYS_write           "0": released, the execve comes next
    c.emit(0x0F, 0x05)  # syscall


def _elf(code: bytes) -> bytes:
    """A static ELF64 executable: one read+execute PT_LOAD of the whole file, and a non-executable stack."""
    ehsize, phentsize, phnum = 64, 56, 2
    start = CODE_OFFSET
    size = start + len(code)
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, version 1, System V
    # e_type EXEC, e_machine x86_64, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize, e_phentsize, e_phnum,
    # e_shentsize, e_shnum, e_shstrndx
    header += _u16(2) + _u16(0x3E) + _u32(1) + _u64(BASE + start) + _u64(ehsize) + _u64(0) + _u32(0)
    header += _u16(ehsize) + _u16(phentsize) + _u16(phnum) + _u16(0) + _u16(0) + _u16(0)
    # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
    load = _u32(1) + _u32(5) + _u64(0) + _u64(BASE) + _u64(BASE) + _u64(size) + _u64(size) + _u64(0x1000)  # PT_LOAD
    stack = _u32(0x6474E551) + _u32(6) + _u64(0) * 5 + _u64(16)  # PT_GNU_STACK, R+W
    return header + load + stack + code


def sealed(image: bytes) -> int:
    """The image in a sealed, close-on-exec memfd: executable by fd, unchangeable by anyone."""
    try:
        fd = os.memfd_create("engine-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC)
    except OSError as err:
        if err.errno != errno.EINVAL:  # a kernel before 6.3 does not know MFD_EXEC
            raise
        fd = os.memfd_create("engine-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING)
    try:
        os.write(fd, image)
        os.fchmod(fd, 0o555)  # the process may have become any user by the time it execs this
        fcntl.fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | _seal_exec(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _seal_exec(fd: int) -> int:
    """F_SEAL_EXEC (Linux 6.3: the mode bits can no longer change) where the kernel knows it."""
    try:
        fcntl.fcntl(fd, F_ADD_SEALS, F_SEAL_EXEC)
    except OSError:
        return 0
    return F_SEAL_EXEC


class Trampoline:
    """A sealed trampoline ready to exec a program; built before seccomp and the privilege drop.

    A failed execve is reported on status_fd as "exec <program>: errno=NNN", or framed by `frame` (which takes
    that text up to "errno=" and gives the bytes to write before and after the digits: `engine exec`'s channel
    wants a message of its protocol, engine.channel.failure_frame)."""

    def __init__(
        self,
        program_path: str,
        status_fd: int,
        *,
        frame: Callable[[str], tuple[bytes, bytes]] | None = None,
        mark_cloexec: bool = True,
        release: Release | None = None,
    ) -> None:
        head = f"exec {program_path[:MESSAGE_PATH_MAX]}: errno="
        prefix, suffix = frame(head) if frame is not None else (head.encode(errors="replace"), b"")
        self.path = program_path
        self.status_fd = status_fd
        self.release = release
        self.fd = sealed(program(status_fd, prefix, suffix, mark_cloexec=mark_cloexec, release=release))

    def execve(self, args: list[str], env: dict[str, str]) -> None:
        """Replace this process with the program, through the trampoline. Returns only by raising OSError."""
        if self.status_fd >= 0:
            os.set_inheritable(self.status_fd, True)  # the trampoline needs it; it marks it close-on-exec itself
        if self.release is not None:
            os.set_inheritable(self.release.proc_fd, True)  # the trampoline closes it once the fifo is open
            os.execve(self.fd, list(self.release.title), {})
        os.execve(self.fd, [self.path, *args], env)

    def close(self) -> None:
        os.close(self.fd)


def describe(message: str) -> str:
    """Turn the trampoline's "exec /bin/x: errno=002" into "exec /bin/x: No such file or directory"."""
    head, sep, digits = message.rpartition(": errno=")
    if not sep or not digits.isdigit():
        return message
    return f"{head}: {os.strerror(int(digits))}"
