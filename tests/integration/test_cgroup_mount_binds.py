"""A "cgroup" mount in a container with its own new cgroup namespace (engine spec's default) on a v1 or hybrid
host: each hierarchy is the container's own cgroup, bound from the host's mount (engine/setup/rootfs.py's
setup_mounts says why: a fresh v1 mount costs the kernel a walk of every cgroup on the host).

A bind and a fresh mount in the namespace look alike from inside (the same superblock, the namespace's root as the
mount's root): tests/unit/test_mount_plan.py checks which calls are made; this checks that what is bound is the
right directory, the container's own cgroup, seen as "/", and not a hierarchy's root.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import host
from tests.integration.conftest import Engine
from tests.integration.test_container_setup import inside, section

pytestmark = pytest.mark.skipif(
    host.cgroup_layout() == "v2", reason="a pure cgroup v2 host mounts one cgroup2 at /sys/fs/cgroup (no v1 hierarchy)"
)


def cgroup_mounts(mountinfo: str) -> dict[str, tuple[str, str]]:
    """mount point under /sys/fs/cgroup/ -> (device, root) of each cgroup or cgroup2 mount."""
    found = {}
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if right.split()[0] in ("cgroup", "cgroup2") and fields[4].startswith("/sys/fs/cgroup/"):
            found[fields[4]] = (fields[2], fields[3])
    return found


def test_each_hierarchy_is_the_containers_own_cgroup_bound_from_the_host(engine: Engine) -> None:
    out = inside(
        engine,
        "echo == mountinfo; cat /proc/self/mountinfo; echo == cgroup; cat /proc/self/cgroup;"
        " echo == pids; ls /sys/fs/cgroup/pids; echo == procs; cat /sys/fs/cgroup/pids/cgroup.procs",
    )
    inside_mounts = cgroup_mounts(section(out, "mountinfo"))
    host_mounts = cgroup_mounts(Path("/proc/self/mountinfo").read_text())
    assert set(inside_mounts) == set(host_mounts)
    for point, (device, root) in inside_mounts.items():
        assert device == host_mounts[point][0], (
            f"{point}: a new superblock ({device}), not the host's ({host_mounts[point][0]})"
        )
        assert root == "/", f"{point}: root {root}: the container sees its cgroup as the namespace's root"
    # Its own cgroup namespace, and the view is its own cgroup: no release_agent (the hierarchy's root has one),
    # pids.max (only below the root), and only its own processes.
    assert all(line.endswith(":/") for line in section(out, "cgroup").splitlines())
    listing = section(out, "pids").split()
    assert "pids.max" in listing and "release_agent" not in listing
    assert "1" in section(out, "procs").split()
