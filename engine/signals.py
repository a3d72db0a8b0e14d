"""Signal names as runc takes them: KILL, SIGKILL, 9, RTMIN+2, SIGRTMIN+2, and 0 (is it alive?)."""

import _signal as signal  # the C module: signal.py builds enums (~7 ms) that kill does not need

from engine.errors import EngineError

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
