"""What the machine running the tests offers, read from the kernel's own files (never from engine's code), and
the sentences that skip reasons use to name each fact: a skipped lane says which host fact switched it off.

tests/conftest.py prints every skip reason at the end of the run, so a green run says what it did not cover.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

CAP_SYS_RESOURCE = 24  # capabilities(7)

GUEST_ENV = "ENGINE_CGROUP2_GUEST"
GUEST_OFF = (
    f"{GUEST_ENV} is not set, so the pure cgroup v2 lane (a qemu guest, tests/cgroup2-guest) did not run: "
    "the README's `pytest -q` leaves it off, .ci/run sets it"
)


def is_root() -> bool:
    return os.geteuid() == 0


def _mountinfo() -> list[tuple[str, str, str]]:
    """(mount point, fs type, super options) of every mount this process sees."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, _source, options = [*right.split(), "", "", ""][:3]
        mounts.append((left.split()[4].replace("\\040", " "), fstype, options))
    return mounts


@cache
def cgroup_layout() -> str:
    """ "v2" (one cgroup2 hierarchy owns the controllers), "hybrid" (v1 controllers and a cgroup2 mount beside
    them), "v1" (v1 only), or "none"."""
    mounts = _mountinfo()
    known = {line.split()[0] for line in Path("/proc/cgroups").read_text().splitlines()[1:] if line.strip()}
    # A v1 mount with controllers (a named one such as name=systemd alone does not make a v1 host).
    v1 = [m for m in mounts if m[1] == "cgroup" and known & set(m[2].split(","))]
    v2 = [m for m in mounts if m[1] == "cgroup2"]
    if v1:
        return "hybrid" if v2 else "v1"
    return "v2" if v2 else "none"


@cache
def cgroup2_mount() -> Path | None:
    """Where the cgroup2 hierarchy is mounted (/sys/fs/cgroup on v2, /sys/fs/cgroup/unified on hybrid)."""
    points = [Path(m[0]) for m in _mountinfo() if m[1] == "cgroup2"]
    for conventional in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        if conventional in points:
            return conventional
    return points[0] if points else None


@cache
def v1_mount(controller: str) -> Path | None:
    for point, fstype, options in _mountinfo():
        if fstype == "cgroup" and controller in options.split(","):
            return Path(point)
    return None


def describe_layout() -> str:
    layout = cgroup_layout()
    if layout == "hybrid":
        unified = cgroup2_mount()
        owned = (unified / "cgroup.controllers").read_text().split() if unified else []
        return (
            f"this host's cgroups are hybrid (v1 controllers; cgroup2 at {unified} owning "
            f"{' '.join(owned) or 'no controller'})"
        )
    if layout == "v2":
        return f"this host's cgroups are pure v2 (cgroup2 at {cgroup2_mount()})"
    if layout == "v1":
        return "this host's cgroups are v1 only (no cgroup2 mount)"
    return "this host has no cgroup filesystem mounted"


def capability_sets() -> dict[str, int]:
    status = Path("/proc/self/status").read_text()
    return {line[:6]: int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("CapEff", "CapBnd"))}


def has_capability(number: int) -> bool:
    return bool(capability_sets()["CapEff"] >> number & 1)


def apparmor_enabled() -> bool:
    enabled = Path("/sys/module/apparmor/parameters/enabled")
    return enabled.exists() and enabled.read_text().strip() == "Y"


APPARMOR_ON = "AppArmor is enabled on this host (/sys/module/apparmor/parameters/enabled is Y)"
APPARMOR_OFF = "AppArmor is not enabled on this host (/sys/module/apparmor/parameters/enabled)"


def selinux_enabled() -> bool:
    return Path("/sys/fs/selinux/enforce").exists()


SELINUX_ON = "SELinux is enabled on this host (/sys/fs/selinux/enforce exists)"


def guest_lane_on() -> bool:
    return os.environ.get(GUEST_ENV) == "1"
