"""The systemd cgroup driver (--systemd-cgroup) for real, with systemd as PID 1.

This machine does not run systemd, so the driver's tests run in the qemu guest of tests/systemd-guest (this
machine's root filesystem booted with systemd as init, pure cgroup v2 by default, systemd's hybrid layout as a
second boot): set ENGINE_SYSTEMD_GUEST=1 (CI does) and test_in_the_systemd_guest boots it and runs this file
there. On this machine itself only the refusal is tested: no systemd, a one-line error, nothing left behind.

What a user observes is checked: the unit systemd reports (systemctl show), the cgroup files, what the
container sees in /proc/self/cgroup and its own cgroup mount, the state JSON, the exit codes and stderr, and
that delete leaves no unit and no cgroup behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Engine

REPO = Path(__file__).resolve().parents[2]
ENGINE = str(Path(sys.executable).with_name("engine"))
SYSTEMD = os.path.isdir("/run/systemd/system")
V2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
BUS = Path("/run/dbus/system_bus_socket").exists()  # the unified boot has dbus-daemon, the hybrid one not
SLOW = 180  # seconds for one engine command: the guest emulates its CPU (TCG), Python starts in seconds there

in_guest = pytest.mark.skipif(
    not SYSTEMD,
    reason="needs systemd as PID 1 (this host has none): ENGINE_SYSTEMD_GUEST=1 runs this file in the qemu guest "
    "of tests/systemd-guest (test_in_the_systemd_guest)",
)


def systemctl(*args: str) -> str:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=60).stdout


def unit_properties(unit: str, *names: str) -> dict[str, str]:
    out = systemctl("show", unit, "-p", ",".join(names))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def unit_known(unit: str) -> bool:
    return unit_properties(unit, "LoadState").get("LoadState") == "loaded"


def cgroup_dir(cgroup: str, controller: str = "") -> Path:
    """Where a cgroup (as /proc/pid/cgroup names it) is on this host, for one v1 controller or cgroup2."""
    if V2:
        return Path("/sys/fs/cgroup") / cgroup.lstrip("/")
    return Path("/sys/fs/cgroup") / (controller or "unified") / cgroup.lstrip("/")


@pytest.fixture
def slice_name() -> Iterator[str]:
    """A nested slice private to the test (systemd creates it and its parent on demand); stopped afterwards."""
    name = f"enginetest-{uuid.uuid4().hex[:8]}.slice"
    yield name
    systemctl("stop", name)
    systemctl("stop", "enginetest.slice")


def bundle_with(engine: Engine, args: list[str], cgroups_path: str | None, resources: dict, **linux: object) -> Path:
    bundle = engine.bundle(args)
    config = json.loads((bundle / "config.json").read_text())
    if cgroups_path is not None:
        config["linux"]["cgroupsPath"] = cgroups_path
    config["linux"]["resources"] = resources
    config["linux"].update(linux)
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


# ----- this host: no systemd ------------------------------------------------------------------------------------


@pytest.mark.skipif(SYSTEMD, reason="systemd runs here; the refusal is for hosts without it")
def test_without_systemd_a_clear_error_and_nothing_left(engine: Engine) -> None:
    cid = engine.new_id()
    bundle = bundle_with(engine, ["true"], f"system.slice:engine:{cid}", {"pids": {"limit": 10}})
    result = engine("--systemd-cgroup", "create", "--bundle", str(bundle), cid)
    assert result.returncode == 1
    assert result.stderr == (
        "engine: --systemd-cgroup: systemd is not running on this host (/run/systemd/system does not exist)\n"
    )
    assert not list(engine.root.iterdir())  # no state directory (the fixture checks processes and mounts)
    assert not list(Path("/sys/fs/cgroup").glob(f"*/system.slice/engine-{cid}.scope"))


@pytest.mark.skipif(SYSTEMD, reason="layout-independent and tested on the host: guest time is precious")
def test_a_cgroups_path_that_is_not_slice_prefix_name_is_refused(engine: Engine) -> None:
    # Checked before systemd is asked anything: the same answer with or without systemd.
    cid = engine.new_id()
    bundle = bundle_with(engine, ["true"], "/engine/not-a-slice-path", {})
    result = engine("--systemd-cgroup", "create", "--bundle", str(bundle), cid, timeout=SLOW)
    assert (result.returncode, result.stderr) == (
        1,
        "engine: config.json: linux.cgroupsPath: '/engine/not-a-slice-path' is not \"slice:prefix:name\", the "
        'form --systemd-cgroup needs (e.g. "system.slice:engine:c1"; drop --systemd-cgroup to use a cgroupfs path)\n',
    )
    assert not list(engine.root.iterdir())


# ----- the driver, in the guest ---------------------------------------------------------------------------------


@in_guest
def test_a_container_in_a_scope_through_its_whole_life(engine: Engine, slice_name: str) -> None:
    cid = engine.new_id()
    unit = f"engine-{cid}.scope"
    cgroup = f"/enginetest.slice/{slice_name}/{unit}"
    resources = {
        "memory": {"limit": 64 << 20},
        "pids": {"limit": 30},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000},
    }
    script = "while :; do sleep 0.2; done"
    bundle = bundle_with(engine, ["sh", "-c", script], f"{slice_name}:engine:{cid}", resources)
    config = json.loads((bundle / "config.json").read_text())
    config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]})
    for key in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][key].append("CAP_MKNOD")  # to make a device node it must not open
    (bundle / "config.json").write_text(json.dumps(config))
    engine("--systemd-cgroup", "create", "--bundle", str(bundle), cid, check=True, timeout=SLOW)
    # Which way engine reached systemd: the system bus when dbus-daemon runs (as runc prefers), else the private
    # socket; the lane boots one of each.
    from engine.cgroups import systemd_dbus

    with systemd_dbus.connect() as bus:
        assert bus.is_bus == BUS

    # The unit systemd made: a scope in the nested slice, delegated, with the resources as properties.
    shown = unit_properties(
        unit, "ActiveState", "Slice", "ControlGroup", "Delegate", "TasksMax", "MemoryMax", "MemoryLimit",
        "CPUQuotaPerSecUSec", "DevicePolicy",
    )  # fmt: skip
    assert shown["ActiveState"] == "active"
    assert shown["Slice"] == slice_name
    assert shown["ControlGroup"] == cgroup
    assert shown["Delegate"] == "yes"
    assert shown["TasksMax"] == "30"
    assert shown["MemoryMax" if V2 else "MemoryLimit"] == str(64 << 20)
    assert shown["CPUQuotaPerSecUSec"] == "200ms"
    assert shown["DevicePolicy"] == "strict"
    assert unit_properties(slice_name, "Slice")["Slice"] == "enginetest.slice"  # a-b.slice sits in a.slice

    record = json.loads((engine.root / cid / "state.json").read_text())
    pid = record["pid"]
    own = Path(f"/proc/{pid}/cgroup").read_text()
    assert record["cgroups"]["driver"] == "systemd"  # later commands need no --systemd-cgroup
    assert record["cgroups"]["mode"] == ("v2" if V2 else "hybrid")  # the host's layout
    assert record["cgroups"]["unit"] == unit
    if V2:
        assert own == f"0::{cgroup}\n"
        d = cgroup_dir(cgroup)
        assert (d / "memory.max").read_text() == f"{64 << 20}\n"
        assert (d / "pids.max").read_text() == "30\n"
        assert (d / "cpu.max").read_text() == "20000 100000\n"
        assert (d / "cpu.weight").read_text() == "59\n"
    else:
        # Every v1 hierarchy: those systemd manages and those the driver made itself (cpuset, freezer, ...).
        assert {line.split(":", 2)[2] for line in own.splitlines()} == {cgroup}, own
        assert (cgroup_dir(cgroup, "memory") / "memory.limit_in_bytes").read_text() == f"{64 << 20}\n"
        assert (cgroup_dir(cgroup, "pids") / "pids.max").read_text() == "30\n"
        assert (cgroup_dir(cgroup, "freezer") / "cgroup.procs").read_text().split() == [str(pid)]

    # A second container for the same cgroupsPath: its unit exists and is active, so it is refused, and the
    # first one is left alone.
    other = f"t-{uuid.uuid4().hex[:10]}"  # not registered for cleanup: it must never exist (checked below)
    result = engine("--systemd-cgroup", "create", "--bundle", str(bundle), other, timeout=SLOW)
    assert (result.returncode, result.stderr) == (
        1,
        f"engine: config.json: linux.cgroupsPath: the systemd unit {unit} already exists and is active "
        "(another container's?)\n",
    )
    assert unit_properties(unit, "ActiveState")["ActiveState"] == "active"
    assert not (engine.root / other).exists()

    engine("start", cid, check=True, timeout=SLOW)
    # exec joins the scope (the root of the container's cgroup namespace), sees its limits in its cgroup mount,
    # and the device policy (deny-all plus runc's defaults: systemd's allow list and our program agree) holds.
    probe = (
        "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max 2>/dev/null || "
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; echo x > /dev/null && echo null-ok; "
        "mknod /tmp/kmsg c 1 11 && echo made; head -c1 /tmp/kmsg >/dev/null 2>&1 || echo kmsg-denied"
    )
    seen = engine("exec", cid, "sh", "-c", probe, check=True, timeout=SLOW).stdout.split()
    assert seen[-4:] == [str(64 << 20), "null-ok", "made", "kmsg-denied"]
    assert seen[0] == "0::/" if V2 else all(line.endswith(":/") for line in seen[:-4])
    ps = json.loads(engine("ps", "--format", "json", cid, check=True, timeout=SLOW).stdout)
    assert pid in ps and len(ps) >= 2  # sh and its sleep

    engine("update", "--memory", str(32 << 20), "--pids-limit", "40", "--cpu-period", "50000", cid,
           check=True, timeout=SLOW)  # fmt: skip
    shown = unit_properties(unit, "TasksMax", "MemoryMax", "MemoryLimit", "CPUQuotaPerSecUSec", "CPUQuotaPeriodUSec")
    assert shown["TasksMax"] == "40"
    assert shown["MemoryMax" if V2 else "MemoryLimit"] == str(32 << 20)
    assert shown["CPUQuotaPeriodUSec"] == "50ms"
    assert shown["CPUQuotaPerSecUSec"] == "400ms"  # the quota kept (20000 µs) over the new period
    if V2:
        assert (cgroup_dir(cgroup) / "cpu.max").read_text() == "20000 50000\n"
        assert (cgroup_dir(cgroup) / "memory.max").read_text() == f"{32 << 20}\n"

    engine("pause", cid, check=True, timeout=SLOW)
    assert engine.state(cid)["status"] == "paused"
    if V2:
        assert "frozen 1" in (cgroup_dir(cgroup) / "cgroup.events").read_text()
    else:
        assert (cgroup_dir(cgroup, "freezer") / "freezer.state").read_text() == "FROZEN\n"
    engine("resume", cid, check=True, timeout=SLOW)

    engine("kill", "--all", cid, "KILL", check=True, timeout=SLOW)
    engine("delete", cid, check=True, timeout=SLOW)
    assert not unit_known(unit)
    assert not cgroup_dir(cgroup, "memory").exists()
    if not V2:  # the freezer hierarchy is engine's, not systemd's: its slice directories went too (they were empty)
        assert not (Path("/sys/fs/cgroup/freezer") / "enginetest.slice").exists()


@in_guest
def test_a_failure_after_the_unit_started_leaves_nothing(engine: Engine, slice_name: str) -> None:
    # systemd accepts the unit; the cgroup file write that follows fails: the unit must go again.
    cid = engine.new_id()
    resources = {"pids": {"limit": 10}, "unified": {"pids.bogus": "1"}}
    bundle = bundle_with(engine, ["true"], f"{slice_name}:engine:{cid}", resources)
    result = engine("--systemd-cgroup", "create", "--bundle", str(bundle), cid, timeout=SLOW)
    assert result.returncode == 1
    assert re.fullmatch(r'engine: linux\.resources\.unified\["pids\.bogus"\]: .*\n', result.stderr), result.stderr
    assert not unit_known(f"engine-{cid}.scope")
    assert not list(engine.root.iterdir())
    assert not cgroup_dir(f"/enginetest.slice/{slice_name}/engine-{cid}.scope", "freezer").exists()


# ----- supervisors that use the systemd cgroup manager ----------------------------------------------------------


@in_guest
@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (.ci/run installs it)")
def test_podman_with_the_systemd_cgroup_manager(tmp_path: Path, rootfs: Path) -> None:
    # podman's default on a systemd host. --rootfs runs the busybox tree as it is (no image import, which costs
    # a minute under emulation); whatever podman adds there stays in the guest's throwaway overlay.
    runroot = tempfile.mkdtemp(prefix="engine-sd-")  # podman refuses a --runroot over 50 characters
    podman = [
        "podman", "--root", str(tmp_path / "storage"), "--runroot", runroot, "--runtime", ENGINE,
        "--log-level", "error", "--cgroup-manager", "systemd", "--events-backend", "file",
        "--storage-driver", "vfs",  # the guest's / is an overlay: no overlay storage on top of it
    ]  # fmt: skip
    try:
        script = "cat /proc/self/cgroup; cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max"
        result = subprocess.run(
            [*podman, "run", "--rm", "--network", "none", "--cgroupns", "host", "--memory", "64m",
             "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--rootfs", str(rootfs),
             "sh", "-c", script],
            capture_output=True, text=True, timeout=SLOW,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        own, memory_max = result.stdout.split()
        # podman's default parent for the systemd manager: machine.slice, "libpod" as the prefix.
        match = re.fullmatch(r"0::/machine\.slice/libpod-([0-9a-f]{64})\.scope", own)
        assert match, own
        assert memory_max == str(64 << 20)
        assert not unit_known(f"libpod-{match[1]}.scope")  # --rm: engine delete stopped the scope
    finally:
        subprocess.run([*podman, "rm", "--all", "--force"], capture_output=True, timeout=SLOW)
        shutil.rmtree(runroot, ignore_errors=True)


@in_guest
@pytest.mark.skipif(shutil.which("containerd") is None, reason="containerd is not installed (.ci/run installs it)")
def test_containerd_runc_shim_with_systemd_cgroup(tmp_path: Path, rootfs: Path, slice_name: str) -> None:
    # What a Kubernetes node with SystemdCgroup = true runs: containerd-shim-runc-v2 passing --systemd-cgroup and
    # a "slice:prefix:name" path. A private containerd (no CRI plugin), the rootfs as is (no image, no registry).
    sock = tmp_path / "containerd.sock"
    (tmp_path / "config.toml").write_text(
        f'version = 2\nroot = "{tmp_path}/root"\nstate = "{tmp_path}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{sock}"\n'
    )
    daemon = subprocess.Popen(
        ["containerd", "--config", str(tmp_path / "config.toml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ctr = ["ctr", "--address", str(sock), "--namespace", "engine-sd"]
    try:
        deadline = time.monotonic() + SLOW
        while subprocess.run([*ctr, "version"], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "containerd did not start"
            time.sleep(0.5)
        name = f"ctr{uuid.uuid4().hex[:8]}"
        # ctr's spec has no cgroup namespace (/proc/self/cgroup shows the host's path) and no cgroup mount: the
        # host's hierarchy is bound in read-only to read the limit.
        script = "cat /proc/self/cgroup; cat /host-cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max"
        result = subprocess.run(
            [*ctr, "run", "--rm", "--runc-binary", ENGINE, "--runc-systemd-cgroup",
             "--cgroup", f"{slice_name}:cri-containerd:{name}", "--memory-limit", str(48 << 20),
             "--mount", "type=bind,src=/sys/fs/cgroup,dst=/host-cgroup,options=rbind:ro",
             "--rootfs", str(rootfs), name, "sh", "-c", script],
            capture_output=True, text=True, timeout=SLOW,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        unit = f"cri-containerd-{name}.scope"
        assert result.stdout.split() == [f"0::/enginetest.slice/{slice_name}/{unit}", str(48 << 20)]
        assert not unit_known(unit)  # --rm: the shim's delete stopped the scope
    finally:
        daemon.terminate()
        daemon.wait(60)
        subprocess.run(["umount", "-R", str(tmp_path / "root")], capture_output=True)


# ----- the lanes themselves, from the host ----------------------------------------------------------------------

# Each boot runs these tests of this file, and the summary must say exactly this (a test that silently skipped
# in the guest would otherwise pass unnoticed). Hybrid (systemd's v1 controllers + the cgroup2 tracking mount)
# runs the container's whole life, where the code differs per layout (hierarchies systemd does not manage, the v1
# freezer and devices); the rest is layout-independent and the boot costs minutes under emulation.
LANES = {
    "unified": ("", "4 passed, 4 skipped"),
    "hybrid": ("whole_life", "1 passed, 7 deselected"),
}
WITH_DBUS = {"unified": True, "hybrid": False}  # dbus-daemon in the guest: both ways to systemd get used
# ENGINE_SYSTEMD_GUEST_CRI=1 adds the CRI end-to-end test's systemd lane (tests/integration/test_cri.py, containerd's
# CRI plugin with SystemdCgroup = true) to the unified boot: about 4 more minutes under emulation, so not by default.
CRI_IN_UNIFIED = ("systemd", "7 passed, 4 skipped, 3 deselected")


@pytest.mark.skipif(
    os.environ.get("ENGINE_SYSTEMD_GUEST") != "1" or SYSTEMD,
    reason="set ENGINE_SYSTEMD_GUEST=1 to boot the qemu guest with systemd as PID 1 (tests/systemd-guest, "
    "a few minutes each) and run this file there",
)
@pytest.mark.parametrize("cgroups", LANES)
def test_in_the_systemd_guest(cgroups: str) -> None:
    select, summary = LANES[cgroups]
    files = ["tests/integration/test_systemd_cgroup.py"]
    if cgroups == "unified" and os.environ.get("ENGINE_SYSTEMD_GUEST_CRI") == "1":
        (select, summary), files = CRI_IN_UNIFIED, [*files, "tests/integration/test_cri.py"]
    script = str(REPO / "tests" / "systemd-guest" / "run.sh")
    # No hypothesis plugin: importing it costs seconds under emulation, and nothing here uses it.
    command = [".venv/bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
               "-o", "addopts=", "-rs", *(["-k", select] if select else []), *files]  # fmt: skip
    env = {
        **os.environ,
        "ENGINE_GUEST_TIMEOUT": os.environ.get("ENGINE_GUEST_TIMEOUT", "900"),
        "ENGINE_SYSTEMD_GUEST_CGROUPS": cgroups,
        "ENGINE_SYSTEMD_GUEST_DBUS": "1" if WITH_DBUS[cgroups] else "0",
    }
    for _ in range(2):  # a guest that never finished (exit 3, seen under heavy load) is tried once more
        result = subprocess.run([script, *command], capture_output=True, text=True, timeout=1000, cwd=REPO, env=env)
        if result.returncode != 3:
            break
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert f"cgroups {cgroups}" in result.stdout.splitlines()[0]
    assert ("systemd is on dbus-daemon's system bus" in result.stdout) == WITH_DBUS[cgroups]
    assert re.search(rf"^{summary} in ", result.stdout, re.MULTILINE), result.stdout[-3000:]
