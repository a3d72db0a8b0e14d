# Type information for _signal, the C module behind `signal`, which typeshed does not describe. engine imports
# _signal instead of signal (whose enum wrappers cost ~1.5 ms of every command): here signals, handlers and
# masks are plain ints, as _signal really returns them. Read by mypy only (pyproject.toml: mypy_path).
from collections.abc import Callable, Iterable
from types import FrameType

_Handler = Callable[[int, FrameType | None], object] | int | None

SIG_DFL: int
SIG_IGN: int
SIG_BLOCK: int
SIG_UNBLOCK: int
SIG_SETMASK: int
NSIG: int
SIGABRT: int
SIGALRM: int
SIGBUS: int
SIGCHLD: int
SIGCONT: int
SIGFPE: int
SIGHUP: int
SIGILL: int
SIGINT: int
SIGIO: int
SIGKILL: int
SIGPIPE: int
SIGPROF: int
SIGPWR: int
SIGQUIT: int
SIGSEGV: int
SIGSTOP: int
SIGSYS: int
SIGTERM: int
SIGTRAP: int
SIGTSTP: int
SIGTTIN: int
SIGTTOU: int
SIGURG: int
SIGUSR1: int
SIGUSR2: int
SIGVTALRM: int
SIGWINCH: int
SIGXCPU: int
SIGXFSZ: int
SIGRTMIN: int
SIGRTMAX: int

def signal(signalnum: int, handler: _Handler, /) -> _Handler: ...
def getsignal(signalnum: int, /) -> _Handler: ...
def pthread_sigmask(how: int, mask: Iterable[int], /) -> set[int]: ...
def valid_signals() -> set[int]: ...
def pidfd_send_signal(pidfd: int, sig: int, siginfo: None = None, flags: int = 0, /) -> None: ...
