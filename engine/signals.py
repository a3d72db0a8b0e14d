"""Signal names as runc takes them: KILL, SIGKILL, 9, RTMIN+2, SIGRTMIN+2, and 0 (is it alive?)."""

import _signal as signal  # the C module: signal.py builds enums (~7 ms) that kill does not need
import posix  # not os: its import costs every command ~1 ms (engine/paths.py)

from engine.errors import EngineError, suppress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# What `engine run` and `engine exec` pass on to the process they wait for.
FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)


def parse_signal(text: str) -> int:
    value = text.strip().upper()
    if value.isdigit():
        number = int(value)
        # 0 is kill(2)'s "no signal": only whether the process exists (and may be signalled), as runc sends it.
        if 0 <= number <= signal.SIGRTMAX:
            return number
        raise EngineError(f"invalid signal {text!r}: {number} is out of range 0..{int(signal.SIGRTMAX)}")
    name = value if value.startswith("SIG") else "SIG" + value
    for prefix, base in (("SIGRTMIN+", signal.SIGRTMIN), ("SIGRTMAX-", signal.SIGRTMAX)):
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            offset = int(name[len(prefix) :])
            number = base + offset if prefix.endswith("+") else base - offset
            if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                return int(number)
            raise EngineError(f"invalid signal {text!r}: outside SIGRTMIN..SIGRTMAX")
    number = getattr(signal, name, None) if name.isidentifier() and not name.startswith("SIG_") else None
    if not isinstance(number, int):
        raise EngineError(f"invalid signal {text!r}")
    return number


class Forwarder:
    """Passes FORWARDED signals on to the process a foreground `engine run` or `engine exec` waits for.

    Installed before that process is let run: a signal that comes before its pid is known is kept, and passed on
    once it is (runc sets its signal handler up before its process starts, for the same reason). Installed only
    once the process ran, a SIGTERM sent as soon as it showed up killed the waiting command at the default action
    and left the process running (tests/integration/test_exec.py::test_signals_are_forwarded, now and then)."""

    def __init__(self) -> None:
        self.pid = 0
        self.pending: list[int] = []
        self.previous: dict[int, Any] = {}

    def install(self) -> "Forwarder":
        self.previous = {sig: signal.signal(sig, self._received) for sig in FORWARDED}
        return self

    def forward_to(self, pid: int) -> None:
        """From now on to `pid` (a child of ours, not yet reaped: the pid cannot have been reused), with what came
        before."""
        self.pid = pid
        pending, self.pending = self.pending, []
        for number in pending:
            self._received(number, None)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _received(self, number: int, frame: object) -> None:
        if not self.pid:
            self.pending.append(number)
            return
        with suppress(ProcessLookupError):
            posix.kill(self.pid, number)
