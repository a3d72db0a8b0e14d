"""The device allowlist judged by the kernel, not by engine: for generated rule lists, what a process may really
mknod and open under engine's eBPF program (loaded into a real cgroup2 cgroup) and under engine's v1 writes is
compared with what the kernel's own v1 devices controller allows when it is given the same rules, one write per
rule, in order (devices.deny "a" first: a runtime starts from deny-all).

The rule lists stay where the spec's reading of the list and the v1 kernel's agree (engine documents where they
part, engine/cgroups/devices.py): type "a" only as the full reset, and no rule that takes access away from an
exception other than its exact match (the kernel only removes exact matches; engine also trims the narrower
exceptions a wider rule covers, and refuses to cut holes). The devices probed are numbers no driver has here
(checked in /proc/devices), so an allowed open fails with ENXIO and a denied one with EPERM, and nothing is
ever really opened.

Needs a cgroup2 mount (the eBPF side) and the v1 devices controller (the oracle): a hybrid host, as this one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.cgroups import ebpf
from engine.cgroups.devices import Emulator, parse_rules
from engine.linux import bpf
from tests import host

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not host.is_root(), reason="loads eBPF programs and makes cgroups: not running as root"),
    pytest.mark.skipif(
        host.cgroup2_mount() is None or host.v1_mount("devices") is None,
        reason=f"needs a cgroup2 mount and the v1 devices controller (the kernel's oracle): {host.describe_layout()}",
    ),
]

ACCESSES = ("r", "w", "rw", "m")  # open O_RDONLY, O_WRONLY, O_RDWR; mknod
OPEN_FLAGS = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}


def unused_majors(count: int) -> list[int]:
    """Major numbers that neither a char nor a block driver has registered here (/proc/devices)."""
    lines = Path("/proc/devices").read_text().splitlines()
    taken = {int(line.split()[0]) for line in lines if line.split()[:1] and line.split()[0].isdigit()}
    free = [m for m in (*range(60, 64), *range(120, 128), *range(240, 255)) if m not in taken]
    if len(free) < count:
        pytest.skip(f"this host has fewer than {count} unregistered device majors in the experimental ranges")
    return free[:count]


class Devices:
    """The probed devices (nodes made here, outside any restricted cgroup) and the probe a child runs."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.majors = unused_majors(3)  # the rules name the first two; the third only matches wildcards
        self.minors = (0, 1, 2)  # likewise
        self.keys = [(t, ma, mi) for t in "cb" for ma in self.majors for mi in self.minors]
        for t, ma, mi in self.keys:
            os.mknod(self.node(t, ma, mi), 0o600 | (stat.S_IFCHR if t == "c" else stat.S_IFBLK), os.makedev(ma, mi))

    def node(self, t: str, major: int, minor: int) -> str:
        return str(self.directory / f"{t}-{major}-{minor}")

    def probe(self) -> dict[str, bool]:
        """In the child: "c 60:1 rw" -> whether the kernel let it happen (EPERM: the device cgroup said no)."""
        seen = {}
        for t, ma, mi in self.keys:
            for access in ACCESSES:
                try:
                    if access == "m":
                        path = self.node(t, ma, mi) + f".{os.getpid()}"
                        os.mknod(path, 0o600 | (stat.S_IFCHR if t == "c" else stat.S_IFBLK), os.makedev(ma, mi))
                        os.unlink(path)
                    else:
                        os.close(os.open(self.node(t, ma, mi), OPEN_FLAGS[access] | os.O_NONBLOCK | os.O_NOCTTY))
                    allowed = True
                except OSError as err:
                    if err.errno not in (errno.EPERM, errno.ENXIO, errno.ENODEV):
                        raise
                    allowed = err.errno != errno.EPERM
                seen[f"{t} {ma}:{mi} {access}"] = allowed
        return seen


def run_in_cgroup(procs_file: Path, fn: Callable[[], Any]) -> Any:
    """Fork a child, move it into the cgroup (procs_file), let it run fn, and bring back its JSON result."""
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # never return into pytest
        try:
            os.close(go_w)
            os.close(out_r)
            os.read(go_r, 1)
            try:
                result: dict[str, Any] = {"ok": fn()}
            except BaseException as err:
                result = {"error": repr(err)}
            os.write(out_w, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(go_r)
    os.close(out_w)
    try:
        procs_file.write_text(str(pid))
        os.write(go_w, b"g")
        data = b""
        while chunk := os.read(out_r, 65536):
            data += chunk
    finally:
        os.close(go_w)
        os.close(out_r)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    result = json.loads(data)
    assert "ok" in result, result
    return result["ok"]


class Cgroups:
    """Cgroup directories this test makes (unique names), removed afterwards."""

    def __init__(self) -> None:
        self.top = f"engine-devtest-{uuid.uuid4().hex[:10]}"
        self.made: list[Path] = []
        devices = host.v1_mount("devices")
        unified = host.cgroup2_mount()
        assert devices is not None and unified is not None
        own = dict(line.split(":", 2)[1:] for line in Path("/proc/self/cgroup").read_text().splitlines())
        self.v1_base = devices / own["devices"].lstrip("/") / self.top
        self.v2_base = unified / self.top  # beside our own cgroup2 cgroup: no internal-process rule below it
        for base in (self.v1_base, self.v2_base):
            base.mkdir()
            self.made.append(base)
        parent = (self.v1_base.parent / "devices.list").read_text().split()
        if parent != ["a", "*:*", "rwm"]:
            pytest.skip(f"this test's v1 devices cgroup does not allow every device ({' '.join(parent)})")

    @contextlib.contextmanager
    def new(self, base: Path) -> Iterator[Path]:
        """A fresh cgroup below base, removed once its (waited for) process is gone."""
        path = base / uuid.uuid4().hex[:8]
        path.mkdir()
        try:
            yield path
        finally:
            path.rmdir()

    def remove(self) -> None:
        for path in reversed(self.made):
            with contextlib.suppress(OSError):
                path.rmdir()


@pytest.fixture(scope="module")
def devices(tmp_path_factory: pytest.TempPathFactory) -> Devices:
    return Devices(tmp_path_factory.mktemp("device-nodes"))


@pytest.fixture(scope="module")
def cgroups() -> Iterator[Cgroups]:
    made = Cgroups()
    try:
        yield made
    finally:
        made.remove()
    assert not any(p.exists() for p in made.made), "cgroups left behind"


def line(rule: dict[str, Any]) -> str:
    """The kernel's v1 syntax for a rule ("a" for the full reset)."""
    if rule["type"] == "a":
        return "a"
    star = lambda n: "*" if n is None else str(n)  # noqa: E731
    return f"{rule['type']} {star(rule['major'])}:{star(rule['minor'])} {rule['access']}"


def kernel_v1(cgroups: Cgroups, devices: Devices, rules: list[dict[str, Any]]) -> dict[str, bool]:
    """The oracle: a v1 devices cgroup given the rules as they are, and a process trying every device there."""
    with cgroups.new(cgroups.v1_base) as cgroup:
        (cgroup / "devices.deny").write_text("a")
        for rule in rules:
            (cgroup / ("devices.allow" if rule["allow"] else "devices.deny")).write_text(line(rule))
        return run_in_cgroup(cgroup / "cgroup.procs", devices.probe)


def engine_ebpf(cgroups: Cgroups, devices: Devices, emu: Emulator) -> dict[str, bool]:
    """engine's eBPF program for the rules, attached to a new cgroup2 cgroup, and a process trying there."""
    with cgroups.new(cgroups.v2_base) as cgroup:
        cgroup_fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
        try:
            prog_fd = bpf.prog_load_cgroup_device(ebpf.device_program(emu))
            try:
                bpf.prog_attach(prog_fd, cgroup_fd)
            finally:
                os.close(prog_fd)
        finally:
            os.close(cgroup_fd)
        return run_in_cgroup(cgroup / "cgroup.procs", devices.probe)


def engine_v1(cgroups: Cgroups, devices: Devices, emu: Emulator) -> dict[str, bool]:
    """engine's v1 way: the writes that take a new cgroup's devices.list to the rules' normal form."""
    with cgroups.new(cgroups.v1_base) as cgroup:
        current = Emulator.from_list((cgroup / "devices.list").read_text())
        for rule in current.transition(emu):
            (cgroup / ("devices.allow" if rule.allow else "devices.deny")).write_text(rule.line())
        return run_in_cgroup(cgroup / "cgroup.procs", devices.probe)


def overlap(one: tuple, other: tuple) -> bool:
    """Whether two (type, major, minor) keys (None: any) name a device in common."""
    return one[0] == other[0] and all(a is None or b is None or a == b for a, b in zip(one[1:], other[1:], strict=True))


def where_the_readings_agree(rules: list[dict[str, Any]]) -> bool:
    """False if a rule would take access away from an exception other than its exact match (one that shares
    devices with it): the kernel leaves those alone, engine trims them or refuses the hole. Tracks only which
    exceptions exist, never a verdict."""
    default_allow, exceptions = False, {}
    for rule in rules:
        if rule["type"] == "a":
            default_allow, exceptions = rule["allow"], {}
            continue
        key = (rule["type"], rule["major"], rule["minor"])
        if rule["allow"] != default_allow:
            exceptions[key] = exceptions.get(key, "") + rule["access"]
            continue
        for other, access in exceptions.items():
            if other != key and overlap(key, other) and set(access) & set(rule["access"]):
                return False
        left = "".join(c for c in exceptions.get(key, "") if c not in rule["access"])
        exceptions.pop(key, None)
        if left:
            exceptions[key] = left
    return True


def rule_strategy(majors: list[int]) -> st.SearchStrategy[dict[str, Any]]:
    reset = st.builds(lambda allow: {"allow": allow, "type": "a", "major": None, "minor": None, "access": "rwm"},
                      st.booleans())  # fmt: skip
    specific = st.fixed_dictionaries(
        {
            "allow": st.booleans(),
            "type": st.sampled_from(["c", "b"]),
            "major": st.sampled_from([None, *majors[:2]]),
            "minor": st.sampled_from([None, 0, 1]),
            "access": st.sampled_from(["r", "w", "m", "rw", "rm", "wm", "rwm"]),
        }
    )
    return st.one_of(reset, specific, specific, specific)


def as_config(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rules as linux.resources.devices entries (the reset written the way a config writes it)."""
    return [{"allow": r["allow"], "access": "rwm"} if r["type"] == "a" else r for r in rules]


def test_the_probe_sees_what_the_kernel_decides(cgroups: Cgroups, devices: Devices) -> None:
    """The instrument itself: in a deny-all v1 cgroup every probe is refused; with "a" allowed, every one
    passes (so an allowed open really fails with ENXIO here, not EACCES from a nodev mount)."""
    assert set(kernel_v1(cgroups, devices, []).values()) == {False}
    allow_all = {"allow": True, "type": "a", "major": None, "minor": None, "access": "rwm"}
    assert set(kernel_v1(cgroups, devices, [allow_all]).values()) == {True}


def test_a_known_list(cgroups: Cgroups, devices: Devices) -> None:
    first, second, _ = devices.majors
    rules = [
        {"allow": True, "type": "c", "major": first, "minor": None, "access": "rw"},
        {"allow": True, "type": "b", "major": second, "minor": 1, "access": "m"},
        {"allow": False, "type": "c", "major": first, "minor": None, "access": "w"},
    ]
    emu = Emulator.from_rules(parse_rules(as_config(rules), "linux.resources.devices"))
    oracle = kernel_v1(cgroups, devices, rules)
    assert oracle[f"c {first}:2 r"] and not oracle[f"c {first}:2 w"] and oracle[f"b {second}:1 m"]
    assert engine_ebpf(cgroups, devices, emu) == oracle
    assert engine_v1(cgroups, devices, emu) == oracle


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_rule_lists(cgroups: Cgroups, devices: Devices, data: st.DataObject) -> None:
    rules = data.draw(st.lists(rule_strategy(devices.majors), max_size=7), label="rules")
    assume(where_the_readings_agree(rules))
    emu = Emulator.from_rules(parse_rules(as_config(rules), "linux.resources.devices"))
    oracle = kernel_v1(cgroups, devices, rules)
    ebpf_verdicts = engine_ebpf(cgroups, devices, emu)
    v1_verdicts = engine_v1(cgroups, devices, emu)
    assert {k for k in oracle if oracle[k] != ebpf_verdicts[k]} == set(), ("eBPF", [line(r) for r in rules])
    assert {k for k in oracle if oracle[k] != v1_verdicts[k]} == set(), ("v1 writes", [line(r) for r in rules])
