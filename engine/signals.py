"""Signal names as runc takes them: KILL, SIGKILL, 9, RTMIN+2, SIGRTMIN+2."""

from __future__ import annotations

import signal

from engine.errors import EngineError


def parse_signal(text: str) -> int:
    value = text.strip().upper()
    if value.isdigit():
        number = int(value)
        if 0 < number <= signal.SIGRTMAX:
            return number
        raise EngineError(f"invalid signal {text!r}: {number} is out of range 1..{int(signal.SIGRTMAX)}")
    name = value if value.startswith("SIG") else "SIG" + value
    for prefix, base in (("SIGRTMIN+", signal.SIGRTMIN), ("SIGRTMAX-", signal.SIGRTMAX)):
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            offset = int(name[len(prefix) :])
            number = base + offset if prefix.endswith("+") else base - offset
            if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                return int(number)
            raise EngineError(f"invalid signal {text!r}: outside SIGRTMIN..SIGRTMAX")
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise EngineError(f"invalid signal {text!r}") from None
