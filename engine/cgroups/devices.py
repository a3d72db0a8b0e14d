"""linux.resources.devices: the device allow/deny rule list, reduced to what the kernel can enforce.

The spec applies the rules "in the listed order", so a later rule overrides an earlier one for the devices and
access modes it names. Both the cgroup v1 devices controller and our v2 eBPF program enforce the same normal
form, which this module computes by replaying the list (as runc's devices emulator does):

    a default (allow-all or deny-all) + exceptions {(type, major, minor): access} of the opposite sign.

Replaying a rule:
- type "a" with no major/minor and access "rwm" resets everything: allow-all or deny-all (the kernel's "a");
- type "a" with a major/minor or fewer access modes means char AND block devices: it is applied as a "c" and a
  "b" rule, which is what the spec says (runc and the kernel instead treat every "a" rule as a reset, granting
  "rwm" on all devices for an `{"allow": true, "access": "r"}`);
- a rule of the opposite sign to the default adds an exception (access modes of one device merge);
- a rule of the default's sign removes access from every exception it covers. If it would have to cut a hole in a
  wider exception (deny c 1:3 after allow c 1:*) it is refused: v1 cannot express it and silently ignores such a
  deny, so a hole request is an error rather than a false sense of security (runc refuses it too). Unlike runc, a
  wildcard rule also removes access from the narrower exceptions it covers (deny c 1:* w after allow c 1:3 rw
  leaves c 1:3 r), which is what "later rules win" means.

Missing fields: type -> "a", major/minor -> any ("*"; -1 is accepted as runc's spelling of it), access -> "rwm"
(the spec makes access OPTIONAL). The access grammar is runc's: any order, repeats allowed, other characters
ignored (with a warning here), empty or without any of r, w, m refused (parse_access).

A request of several modes (open O_RDWR asks for r and w) is allowed, in deny-all mode, only if ONE exception
grants all of them, and denied, in allow-all mode, if ANY exception denies one of them: the kernel's v1 matching
(match_exception / match_exception_partial), mirrored by the eBPF program.

After the config's rules the runtime appends runc's default allowed devices (specconv.AllowedDevices) so that a
config without rules gets the usual deny-all plus /dev/null, /dev/zero, ttys...: containers run under runc and
under engine see the same devices.
"""

from __future__ import annotations

from engine.cgroups.fs import CgroupError, jpath
from engine.record import record

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from engine.spec.typed import Device, DeviceCgroup, Resources

ALL_ACCESS = "rwm"
MAX_DEVICE_NUMBER = 0xFFFFFFFF  # the kernel parses majors/minors as u32 (dev_t uses 12 and 20 bits)

Key = tuple[str, int | None, int | None]  # (type "c"/"b", major or None for any, minor or None for any)


def norm_access(access: str) -> str:
    return "".join(c for c in ALL_ACCESS if c in access)


@record(frozen=True)
class Rule:
    allow: bool
    type: str  # "a", "c" or "b"
    major: int | None  # None: any
    minor: int | None
    access: str  # normalized: a non-empty subsequence of "rwm"

    @property
    def is_reset(self) -> bool:
        return self.type == "a" and self.major is None and self.minor is None and self.access == ALL_ACCESS

    def line(self) -> str:
        """The kernel's devices.allow / devices.deny / devices.list format: "c 1:3 rwm"."""
        return f"{self.type} {_num(self.major)}:{_num(self.minor)} {self.access}"

    def describe(self) -> str:
        return f"{'allow' if self.allow else 'deny'} {self.line()}"


def _num(value: int | None) -> str:
    return "*" if value is None else str(value)


def _key_line(key: Key, access: str) -> str:
    return f"{key[0]} {_num(key[1])}:{_num(key[2])} {access}"


# runc's specconv.AllowedDevices: (path or None, rule). Appended after the config's rules.
DEFAULT_RULES: tuple[tuple[str | None, Rule], ...] = (
    (None, Rule(True, "c", None, None, "m")),
    (None, Rule(True, "b", None, None, "m")),
    ("/dev/null", Rule(True, "c", 1, 3, ALL_ACCESS)),
    ("/dev/random", Rule(True, "c", 1, 8, ALL_ACCESS)),
    ("/dev/full", Rule(True, "c", 1, 7, ALL_ACCESS)),
    ("/dev/tty", Rule(True, "c", 5, 0, ALL_ACCESS)),
    ("/dev/zero", Rule(True, "c", 1, 5, ALL_ACCESS)),
    ("/dev/urandom", Rule(True, "c", 1, 9, ALL_ACCESS)),
    (None, Rule(True, "c", 136, None, ALL_ACCESS)),  # /dev/pts/*
    # runc's rule for /dev/pts/ptmx and /dev/ptmx has no path: linux.devices listing /dev/ptmx never removes it
    # (runc skips that entry and keeps /dev/ptmx -> pts/ptmx, engine.setup.devices), or a terminal could not open it.
    (None, Rule(True, "c", 5, 2, ALL_ACCESS)),
)


def default_rules(linux_devices: Iterable[Device] | None = None) -> list[Rule]:
    """runc's default rules, minus those for a path that linux.devices defines itself (as runc dedups them)."""
    own = {d.get("path") for d in linux_devices or ()}
    return [rule for path, rule in DEFAULT_RULES if path is None or path not in own]


def parse_rule(entry: DeviceCgroup, where: str, warn: Callable[[str], None] | None = None) -> Rule:
    # dict, not collections.abc.Mapping: entries come from parsed JSON, and collections costs create ~1.5 ms.
    if not isinstance(entry, dict):
        raise CgroupError(f"{where}: expected an object, got {entry!r}")
    allow = entry.get("allow")
    if not isinstance(allow, bool):
        raise CgroupError(f"{jpath(where, 'allow')}: required, true or false")
    dev_type = entry.get("type") or "a"
    if dev_type not in ("a", "c", "b"):
        raise CgroupError(f'{jpath(where, "type")}: {dev_type!r} is not "a", "c" or "b"')
    numbers: list[int | None] = []
    for name in ("major", "minor"):
        value = entry.get(name)
        if value is None or value == -1:
            numbers.append(None)
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DEVICE_NUMBER:
            raise CgroupError(f"{jpath(where, name)}: {value!r} is not a device number (0 to {MAX_DEVICE_NUMBER})")
        else:
            numbers.append(value)
    access = parse_access(entry.get("access"), jpath(where, "access"), warn)
    return Rule(allow, dev_type, numbers[0], numbers[1], access)


def parse_access(access: Any, where: str, warn: Callable[[str], None] | None = None) -> str:
    """The access string, normalized to a subsequence of "rwm". runc 1.1.5's grammar (checked side by side): any
    order, repeats, and characters other than r, w, m are ignored ("rwa" is "rw"); an empty string, or one with
    none of r, w, m, is refused. engine also warns about the characters it ignores. Absent: "rwm" (the spec makes
    access OPTIONAL; runc refuses a missing one)."""
    if access is None:
        return ALL_ACCESS
    if not isinstance(access, str):
        raise CgroupError(f"{where}: expected a string of r, w and m, got {access!r}")
    if not access:
        raise CgroupError(f"{where}: must not be empty (a combination of r, w and m)")
    modes = norm_access(access)
    if not modes:
        raise CgroupError(f"{where}: {access!r} has none of r, w and m")
    ignored = "".join(dict.fromkeys(c for c in access if c not in ALL_ACCESS))
    if ignored and warn is not None:
        warn(f"{where}: ignoring {ignored!r} in {access!r}: only r, w and m mean something (runc ignores them too)")
    return modes


def parse_rules(
    entries: Iterable[DeviceCgroup] | None, where: str, warn: Callable[[str], None] | None = None
) -> list[tuple[str, Rule]]:
    return [(jpath(where, i), parse_rule(e, jpath(where, i), warn)) for i, e in enumerate(entries or ())]


def _order(item: tuple[Key, str]) -> tuple[int, int, str]:
    (dev_type, major, minor), _ = item
    return (-1 if major is None else major, -1 if minor is None else minor, dev_type)


def _covers(wide: Key, narrow: Key) -> bool:
    return wide[0] == narrow[0] and all(w is None or w == n for w, n in zip(wide[1:], narrow[1:], strict=True))


def _overlaps(a: Key, b: Key) -> bool:
    return a[0] == b[0] and all(x is None or y is None or x == y for x, y in zip(a[1:], b[1:], strict=True))


class Emulator:
    """The normal form of a rule list: a default and exceptions of the opposite sign."""

    def __init__(self, default_allow: bool = False, exceptions: dict[Key, str] | None = None) -> None:
        self.default_allow = default_allow
        self.exceptions: dict[Key, str] = dict(exceptions or {})

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Emulator)
            and self.default_allow == other.default_allow
            and self.exceptions == other.exceptions
        )

    def __repr__(self) -> str:
        mode = "allow-all" if self.default_allow else "deny-all"
        return f"Emulator({mode}, {[_key_line(k, a) for k, a in self.sorted()]})"

    def sorted(self) -> list[tuple[Key, str]]:
        """Exceptions in a stable order (major, minor, type; "any" first), so programs and writes are
        reproducible."""
        return sorted(self.exceptions.items(), key=_order)

    def apply(self, rule: Rule) -> None:
        """Replay one rule; raises ValueError (the reason) for a hole in a wider exception."""
        if rule.is_reset:
            self.default_allow = rule.allow
            self.exceptions = {}
            return
        for dev_type in ("c", "b") if rule.type == "a" else (rule.type,):
            key: Key = (dev_type, rule.major, rule.minor)
            if rule.allow != self.default_allow:
                self.exceptions[key] = norm_access(self.exceptions.get(key, "") + rule.access)
                continue
            for other, granted in list(self.exceptions.items()):
                common = norm_access("".join(c for c in granted if c in rule.access))
                if not common or not _overlaps(key, other):
                    continue
                if not _covers(key, other):
                    raise ValueError(
                        f"cannot {'allow' if rule.allow else 'deny'} {_key_line(key, rule.access)} after "
                        f"{'denying' if rule.allow else 'allowing'} {_key_line(other, granted)}: the device "
                        "cgroup cannot cut a hole in a wider rule"
                    )
                left = norm_access("".join(c for c in granted if c not in rule.access))
                if left:
                    self.exceptions[other] = left
                else:
                    del self.exceptions[other]

    def allows(self, dev_type: str, major: int, minor: int, access: str) -> bool:
        """The decision for one request, as the v1 kernel makes it (the reference the eBPF program is tested
        against)."""
        for (t, ma, mi), granted in self.exceptions.items():
            if t != dev_type or (ma is not None and ma != major) or (mi is not None and mi != minor):
                continue
            if self.default_allow:
                if set(access) & set(granted):
                    return False  # any requested mode denied by an exception denies the request
            elif set(access) <= set(granted):
                return True  # one exception must grant every requested mode
        return self.default_allow

    @classmethod
    def from_rules(cls, rules: Iterable[tuple[str, Rule]]) -> Emulator:
        """Replay (json path, rule) pairs from deny-all (what a runtime starts from)."""
        emu = cls(default_allow=False)
        for where, rule in rules:
            try:
                emu.apply(rule)
            except ValueError as err:
                raise CgroupError(f"{where}: {err}") from None
        return emu

    @classmethod
    def from_list(cls, text: str) -> Emulator:
        """A v1 devices.list. In allow-all mode it shows only "a *:* rwm" and hides the deny exceptions."""
        emu = cls(default_allow=False)
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue
            dev_type, numbers, access = parts
            if dev_type == "a":
                return cls(default_allow=True)
            major, _, minor = numbers.partition(":")
            key: Key = (dev_type, None if major == "*" else int(major), None if minor == "*" else int(minor))
            emu.exceptions[key] = norm_access(emu.exceptions.get(key, "") + access)
        return emu

    def transition(self, target: Emulator) -> list[Rule]:
        """The v1 writes that turn this (current) state into target, least disruptive first (runc's
        Transition): a reset only when the mode changes or the current mode is allow-all (whose deny exceptions
        devices.list does not show), then removals, then additions."""
        rules: list[Rule] = []
        old = self.exceptions
        if self.default_allow or self.default_allow != target.default_allow:
            rules.append(Rule(target.default_allow, "a", None, None, ALL_ACCESS))
            old = {}
        for key, granted in sorted(old.items(), key=_order):
            dropped = norm_access("".join(c for c in granted if c not in target.exceptions.get(key, "")))
            if dropped:
                rules.append(Rule(target.default_allow, key[0], key[1], key[2], dropped))
        for key, granted in target.sorted():
            gained = norm_access("".join(c for c in granted if c not in old.get(key, "")))
            if gained:
                rules.append(Rule(not target.default_allow, key[0], key[1], key[2], gained))
        return rules


def container_rules(
    resources: Resources | None,
    where: str,
    linux_devices: Iterable[Device] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Emulator:
    """The device policy of a container: its rules, then runc's defaults, replayed from deny-all."""
    rules = parse_rules((resources or {}).get("devices"), jpath(where, "devices"), warn)
    defaults = jpath(where, "devices")
    rules += [(f"{defaults} (runtime default {rule.describe()})", rule) for rule in default_rules(linux_devices)]
    return Emulator.from_rules(rules)
