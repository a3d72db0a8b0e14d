"""engine exec --cgroup: the argument grammar (runc 1.1.5's, a little stricter) and which directory each
hierarchy's join goes to (engine/cgroups/exec_join.py). Pure: no cgroup is touched."""

from __future__ import annotations

import pytest

from engine.cgroups.exec_join import exec_targets, parse
from engine.cgroups.fs import CgroupError
from engine.cgroups.v1 import V1Manager
from engine.cgroups.v2 import V2Manager

V1_DIRS = {
    "memory": "/sys/fs/cgroup/memory/engine/c1",
    "cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/engine/c1",
    "name=systemd": "/sys/fs/cgroup/systemd/engine/c1",
    "unified": "/sys/fs/cgroup/unified/engine/c1",
}


def v1() -> V1Manager:
    mgr = V1Manager("engine/c1", V1_DIRS, {name: d.rsplit("/engine/", 1)[0] for name, d in V1_DIRS.items()})
    mgr.mode = "hybrid"
    return mgr


def v2() -> V2Manager:
    return V2Manager("engine/c1", {"unified": "/sys/fs/cgroup/engine/c1"}, {"unified": "/sys/fs/cgroup"})


def test_parse() -> None:
    assert parse([]) == {}
    assert parse(["sub"]) == {"": "sub"}
    assert parse(["memory:a", "cpu,cpuacct:b"]) == {"memory": "a", "cpu": "b", "cpuacct": "b"}
    assert parse(["name=systemd:x"]) == {"name=systemd": "x"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a", "memory:b"], "--cgroup 'a': missing the <controller>: prefix"),
        (["a:b:c"], r"--cgroup 'a:b:c': expected \[<controller>"),
        ([":x"], "--cgroup ':x': empty controller name"),
        (["memory,:x"], "empty controller name"),
        (["memory:a", "memory:b"], "--cgroup 'memory:b': controller memory given more than once"),
    ],
)
def test_parse_refuses(args: list[str], message: str) -> None:
    with pytest.raises(CgroupError, match=message):
        parse(args)


def test_targets_on_v1() -> None:
    mgr = v1()
    assert exec_targets(mgr, []) == V1_DIRS
    assert exec_targets(mgr, ["/"]) == V1_DIRS
    every = exec_targets(mgr, ["a/../sub/"])
    assert every == {name: d + "/sub" for name, d in V1_DIRS.items()}
    some = exec_targets(mgr, ["memory:m", "cpu:c", "name=systemd:s", "unified:u"])
    suffix = {"memory": "/m", "cpu,cpuacct": "/c", "name=systemd": "/s", "unified": "/u"}
    assert some == {name: d + suffix[name] for name, d in V1_DIRS.items()}
    # cpu names the comounted cpu,cpuacct hierarchy; cpuacct may name it too, with the same path only.
    assert exec_targets(mgr, ["cpu:c", "cpuacct:c"])["cpu,cpuacct"] == V1_DIRS["cpu,cpuacct"] + "/c"
    with pytest.raises(CgroupError, match="cpuacct shares the cpu,cpuacct hierarchy with a controller given"):
        exec_targets(mgr, ["cpu:c", "cpuacct:d"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["../other"], r"--cgroup '../other': bad sub cgroup path: it leaves the container's cgroup"),
        ([".."], "bad sub cgroup path"),
        (["memory:../c1-sibling"], r"--cgroup 'memory:../c1-sibling': bad sub cgroup path"),  # runc 1.1.5 allows
        (["a/../../b"], "bad sub cgroup path"),
        (["pids:x"], r"--cgroup pids:x: unknown controller pids \(this container's hierarchies: memory, cpu,cpuacct"),
    ],
)
def test_targets_refused(args: list[str], message: str) -> None:
    with pytest.raises(CgroupError, match=message):
        exec_targets(v1(), args)


def test_targets_on_v2() -> None:
    mgr = v2()
    assert exec_targets(mgr, ["sub"]) == {"unified": "/sys/fs/cgroup/engine/c1/sub"}
    with pytest.raises(CgroupError, match="cgroup v2 has one hierarchy: give the sub-cgroup path alone"):
        exec_targets(mgr, ["memory:sub"])
    with pytest.raises(CgroupError, match="bad sub cgroup path"):
        exec_targets(mgr, ["../c2"])
