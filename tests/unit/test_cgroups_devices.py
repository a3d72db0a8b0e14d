"""engine.cgroups.devices and .ebpf: the rule list's normal form, v1 transitions, and the v2 program.

The eBPF program is checked by interpreting it (ebpf.run) against Emulator.allows, the v1 kernel's decision, for
every request on a grid of devices and for random rule lists (hypothesis).
"""

from __future__ import annotations

import itertools
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cgroups import ebpf
from engine.cgroups.devices import (
    DEFAULT_RULES,
    Emulator,
    Rule,
    container_rules,
    default_rules,
    parse_rule,
    parse_rules,
)
from engine.cgroups.fs import CgroupError

W = "linux.resources.devices"


def emu_of(*rules: dict[str, Any]) -> Emulator:
    return Emulator.from_rules(parse_rules(rules, W))


def lines(emu: Emulator) -> list[str]:
    return [f"{t} {'*' if a is None else a}:{'*' if b is None else b} {acc}" for (t, a, b), acc in emu.sorted()]


DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_ALL = {"allow": True, "access": "rwm"}


# ----- parsing -------------------------------------------------------------------------------------------------


def test_parse_defaults_and_wildcards() -> None:
    assert parse_rule({"allow": False}, W) == Rule(False, "a", None, None, "rwm")
    assert parse_rule({"allow": True, "type": "c", "major": 1, "minor": -1, "access": "wr"}, W) == Rule(
        True, "c", 1, None, "rw"
    )
    assert Rule(True, "c", 1, None, "rw").line() == "c 1:* rw"


@pytest.mark.parametrize(
    ("entry", "path", "reason"),
    [
        ({"type": "c"}, "allow", "required"),
        ({"allow": True, "type": "p"}, "type", "not"),
        ({"allow": True, "major": -2}, "major", "not a device number"),
        ({"allow": True, "minor": 1 << 32}, "minor", "not a device number"),
        ({"allow": True, "access": ""}, "access", "must not be empty"),
        ({"allow": True, "access": "x"}, "access", "'x' has none of r, w and m"),
        ({"allow": True, "access": "RW"}, "access", "has none of r, w and m"),
        ({"allow": True, "access": 7}, "access", "expected a string"),
    ],
)
def test_parse_errors_name_the_field(entry: dict[str, Any], path: str, reason: str) -> None:
    with pytest.raises(CgroupError, match=rf"^{W}\[3\]\.{path}: .*{reason}"):
        parse_rules([DENY_ALL, DENY_ALL, DENY_ALL, entry], W)


# runc 1.1.5's access grammar, as observed on this machine (the side-by-side test in
# tests/integration/test_runc_cgroups.py runs the same strings under both runtimes): any order and repeats are
# fine, other characters are ignored. engine warns about the ignored ones.
@pytest.mark.parametrize(
    ("access", "modes", "ignored"),
    [
        ("rwm", "rwm", ""),
        ("mrw", "rwm", ""),
        ("wr", "rw", ""),
        ("rr", "r", ""),
        ("rwmrwm", "rwm", ""),
        ("rwa", "rw", "a"),
        ("rwmx", "rwm", "x"),
        (" r", "r", " "),
    ],
)
def test_access_grammar_is_runcs(access: str, modes: str, ignored: str) -> None:
    warnings: list[str] = []
    rule = parse_rule({"allow": True, "type": "c", "major": 1, "minor": 11, "access": access}, W, warnings.append)
    assert rule.access == modes
    if ignored:
        assert warnings == [
            f"{W}.access: ignoring {ignored!r} in {access!r}: only r, w and m mean something (runc ignores them too)"
        ]
    else:
        assert warnings == []


# ----- emulation -----------------------------------------------------------------------------------------------


def test_reset_rules() -> None:
    assert emu_of(ALLOW_ALL) == Emulator(True)
    assert emu_of(ALLOW_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3}, DENY_ALL) == Emulator(False)
    # Without rules a runtime starts from deny-all.
    assert emu_of() == Emulator(False)


def test_later_rules_win_for_the_same_device() -> None:
    emu = emu_of(DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                 {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"})  # fmt: skip
    assert lines(emu) == ["c 1:3 rm"]
    assert emu.allows("c", 1, 3, "r") and not emu.allows("c", 1, 3, "w") and not emu.allows("c", 1, 3, "rw")
    # ... and allowing it again merges the modes back
    emu.apply(Rule(True, "c", 1, 3, "w"))
    assert lines(emu) == ["c 1:3 rwm"]


def test_a_wildcard_deny_trims_the_narrower_exceptions_it_covers() -> None:
    emu = emu_of(DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                 {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
                 {"allow": True, "type": "b", "major": 1, "minor": 3, "access": "rw"},
                 {"allow": False, "type": "c", "major": 1, "access": "w"})  # fmt: skip
    assert lines(emu) == ["b 1:3 rw", "c 1:3 r", "c 1:5 r"]


def test_a_hole_in_a_wider_rule_is_refused() -> None:
    with pytest.raises(CgroupError, match=rf"^{W}\[2\]: cannot deny c 1:3 w after allowing c 1:\* rw"):
        emu_of(DENY_ALL, {"allow": True, "type": "c", "major": 1, "access": "rw"},
               {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"})  # fmt: skip
    # Partly overlapping wildcards are holes too (c *:5 vs c 1:*).
    with pytest.raises(CgroupError, match="cannot cut a hole"):
        emu_of(DENY_ALL, {"allow": True, "type": "c", "minor": 5}, {"allow": False, "type": "c", "major": 1})
    # Disjoint modes are no hole: the wide rule keeps its modes.
    emu = emu_of(DENY_ALL, {"allow": True, "type": "c", "major": 1, "access": "r"},
                 {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"})  # fmt: skip
    assert lines(emu) == ["c 1:* r"]


def test_allow_all_mode_with_deny_exceptions() -> None:
    emu = emu_of(ALLOW_ALL, {"allow": False, "type": "b", "major": 8, "access": "w"})
    assert emu.default_allow and lines(emu) == ["b 8:* w"]
    assert emu.allows("b", 8, 1, "r") and not emu.allows("b", 8, 1, "rw") and emu.allows("c", 8, 1, "w")
    with pytest.raises(ValueError, match=r"cannot allow b 8:1 w after denying b 8:\* w"):
        emu.apply(Rule(True, "b", 8, 1, "w"))


def test_type_a_with_limits_means_char_and_block() -> None:
    # The spec reading; runc and the v1 kernel would turn this into "allow everything".
    emu = emu_of(DENY_ALL, {"allow": True, "type": "a", "major": 7, "access": "r"})
    assert lines(emu) == ["b 7:* r", "c 7:* r"]
    emu = emu_of(DENY_ALL, {"allow": True, "access": "m"})
    assert lines(emu) == ["b *:* m", "c *:* m"]
    assert emu_of(ALLOW_ALL, {"allow": False, "access": "r"}).sorted() == [
        (("b", None, None), "r"),
        (("c", None, None), "r"),
    ]


def test_default_rules_are_runcs_and_follow_the_config() -> None:
    emu = container_rules({"devices": [DENY_ALL]}, "linux.resources")
    assert lines(emu) == ["b *:* m", "c *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                          "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm"]  # fmt: skip
    # No rules at all: the same (the runtime never leaves devices unrestricted by accident).
    assert container_rules(None, "linux.resources") == emu
    # A privileged config stays allow-all: the defaults only remove nothing.
    assert container_rules({"devices": [ALLOW_ALL]}, "linux.resources") == Emulator(True)
    # runc drops the default rule for a path that linux.devices defines itself.
    assert Rule(True, "c", 1, 3, "rwm") not in default_rules([{"path": "/dev/null", "type": "c"}])
    assert len(default_rules(None)) == len(DEFAULT_RULES)


# ----- v1 transitions ------------------------------------------------------------------------------------------


def test_from_list() -> None:
    assert Emulator.from_list("a *:* rwm\n") == Emulator(True)
    emu = Emulator.from_list("c 1:3 rwm\nc 136:* rw\nb *:* m\n")
    assert emu == Emulator(False, {("c", 1, 3): "rwm", ("c", 136, None): "rw", ("b", None, None): "m"})


def test_transition_from_a_new_cgroup_denies_all_then_allows() -> None:
    target = emu_of(DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"})
    rules = Emulator(True).transition(target)
    assert [r.describe() for r in rules] == ["deny a *:* rwm", "allow c 1:3 rw"]


def test_transition_between_allow_lists_is_minimal() -> None:
    old = Emulator(False, {("c", 1, 3): "rwm", ("c", 1, 5): "rwm"})
    new = Emulator(False, {("c", 1, 3): "r", ("c", 1, 9): "rw"})
    assert [r.describe() for r in old.transition(new)] == ["deny c 1:3 wm", "deny c 1:5 rwm", "allow c 1:9 rw"]
    assert old.transition(old) == []


def test_transition_to_allow_all() -> None:
    target = emu_of(ALLOW_ALL, {"allow": False, "type": "c", "major": 10, "minor": 200})
    assert [r.describe() for r in Emulator(False).transition(target)] == ["allow a *:* rwm", "deny c 10:200 rwm"]


# ----- the eBPF program ----------------------------------------------------------------------------------------

# Every access combination on devices that the rules below name, and some they do not.
REQUESTS = list(itertools.product((ebpf.DEV_CHAR, ebpf.DEV_BLOCK), (1, 5, 136, 4095), (0, 3, 5, 7), range(1, 8)))
TYPE_NAME = {ebpf.DEV_CHAR: "c", ebpf.DEV_BLOCK: "b"}


def access_letters(bits: int) -> str:
    return "".join(c for c, b in ebpf.ACCESS_BITS.items() if bits & b)


def assert_program_matches(emu: Emulator) -> None:
    prog = ebpf.device_program(emu)
    for dev_type, major, minor, bits in REQUESTS:
        expected = emu.allows(TYPE_NAME[dev_type], major, minor, access_letters(bits))
        got = ebpf.run(prog, dev_type, major, minor, bits)
        assert got == int(expected), (emu, TYPE_NAME[dev_type], major, minor, access_letters(bits))


def test_program_shape() -> None:
    prog = ebpf.device_program(Emulator(False))
    assert len(prog) % ebpf.INSN_SIZE == 0
    # The prologue loads type, access, major and minor from struct bpf_cgroup_dev_ctx.
    code, regs, off, _imm = struct.unpack_from("<BBhi", prog, 0)
    assert (code, regs & 0xF, regs >> 4, off) == (0x61, ebpf.R2, ebpf.R1, 0)
    # Deny-all with no exceptions: prologue + "return 0".
    assert len(prog) // ebpf.INSN_SIZE == 6 + 2
    assert ebpf.run(prog, ebpf.DEV_CHAR, 1, 3, ebpf.ACC_READ) == 0
    assert ebpf.run(ebpf.device_program(Emulator(True)), ebpf.DEV_CHAR, 1, 3, ebpf.ACC_READ) == 1


@pytest.mark.parametrize(
    "rules",
    [
        [DENY_ALL],
        [ALLOW_ALL],
        [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
        [
            DENY_ALL,
            {"allow": True, "type": "c", "major": 136, "access": "rwm"},
            {"allow": True, "type": "b", "access": "m"},
        ],
        [ALLOW_ALL, {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"}],
        [ALLOW_ALL, {"allow": False, "type": "b", "access": "r"}, {"allow": False, "type": "c", "minor": 7}],
    ],
)
def test_program_matches_the_kernel_semantics(rules: list[dict[str, Any]]) -> None:
    assert_program_matches(emu_of(*rules))
    try:
        with_defaults = container_rules({"devices": rules}, "linux.resources")
    except CgroupError as err:
        # runc's default rules cannot cut holes in the config's wide denies either; it refuses this too.
        assert "runtime default allow c 1:7 rwm" in str(err)
        return
    assert_program_matches(with_defaults)


def test_allow_all_program_denies_a_request_with_any_denied_mode() -> None:
    # runc's program let O_RDWR (r|w) through a "deny w" exception; v1 and this program refuse it.
    prog = ebpf.device_program(emu_of(ALLOW_ALL, {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"}))
    assert ebpf.run(prog, ebpf.DEV_CHAR, 1, 5, ebpf.ACC_READ | ebpf.ACC_WRITE) == 0
    assert ebpf.run(prog, ebpf.DEV_CHAR, 1, 5, ebpf.ACC_READ) == 1


def test_numbers_above_2_31_compare_exactly() -> None:
    big = 0x80000001
    prog = ebpf.device_program(Emulator(False, {("c", big, 1): "rwm"}))
    assert ebpf.run(prog, ebpf.DEV_CHAR, big, 1, ebpf.ACC_READ) == 1
    assert ebpf.run(prog, ebpf.DEV_CHAR, big - (1 << 32) & 0xFFFFFFFF, 1, ebpf.ACC_READ) == 1
    assert ebpf.run(prog, ebpf.DEV_CHAR, 1, 1, ebpf.ACC_READ) == 0


rule_strategy = st.fixed_dictionaries(
    {
        "allow": st.booleans(),
        "type": st.sampled_from(["a", "c", "b"]),
        "major": st.sampled_from([None, 1, 5, 136]),
        "minor": st.sampled_from([None, 3, 5, 7]),
        "access": st.sampled_from(["r", "w", "m", "rw", "rm", "wm", "rwm"]),
    }
)


@settings(max_examples=60, deadline=None)
@given(st.lists(rule_strategy, max_size=8))
def test_random_rule_lists(rules: list[dict[str, Any]]) -> None:
    try:
        emu = emu_of(*rules)
    except CgroupError as err:
        assert "cannot cut a hole" in str(err)
        return
    assert_program_matches(emu)
    # Normal form invariants: exceptions never carry the default's verdict, and modes are never empty.
    assert all(emu.exceptions.values())
    # Replaying a list ending in a full reset gives just the reset.
    emu.apply(Rule(False, "a", None, None, "rwm"))
    assert emu == Emulator(False)


@settings(max_examples=80, deadline=None)
@given(st.lists(rule_strategy, max_size=6), st.lists(rule_strategy, max_size=6))
def test_transition_reaches_the_target(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> None:
    try:
        old, new = emu_of(*first), emu_of(*second)
    except CgroupError:
        return
    # Replaying the transition's writes on the old state, as the kernel would, gives the target.
    state = Emulator(old.default_allow, old.exceptions)
    for rule in old.transition(new):
        kernel_apply(state, rule)
    assert state == new


def kernel_apply(state: Emulator, rule: Rule) -> None:
    """A devices.allow/devices.deny write as the v1 kernel does it: "a" resets, anything else adds to or
    subtracts from the exception with exactly that type, major and minor."""
    if rule.type == "a":
        state.default_allow, state.exceptions = rule.allow, {}
        return
    key = (rule.type, rule.major, rule.minor)
    have = state.exceptions.get(key, "")
    if rule.allow != state.default_allow:
        state.exceptions[key] = "".join(c for c in "rwm" if c in have + rule.access)
    else:
        left = "".join(c for c in have if c not in rule.access)
        if left:
            state.exceptions[key] = left
        else:
            state.exceptions.pop(key, None)
