"""engine.cgroups.remove (engine delete of a stopped container) without root, over plain directories: rmdir(2)
refuses a non-empty directory there as cgroupfs refuses a busy cgroup, so the shortcut's decisions (remove all,
or keep what it may not touch and hand over to the slow path) can be checked here. The real cgroups are deleted
by tests/integration/test_lifecycle.py and test_cri_shim_contract.py (a cgroup the init left a process in)."""

from __future__ import annotations

from pathlib import Path

from engine.cgroups.remove import remove_if_empty
from engine.cgroups.v1 import V1Manager


def manager(tmp_path: Path, created: list[str] | None = None) -> tuple[V1Manager, list[Path]]:
    leaves = [tmp_path / name / "engine" / "c1" for name in ("memory", "pids")]
    for leaf in leaves:
        leaf.mkdir(parents=True)
    parents = [str(leaf.parent) for leaf in leaves]
    mgr = V1Manager(
        "engine/c1",
        {"memory": str(leaves[0]), "pids": str(leaves[1])},
        {"memory": str(tmp_path / "memory"), "pids": str(tmp_path / "pids")},
        created=created if created is not None else [*parents, *map(str, leaves)],
    )
    return mgr, leaves


def test_empty_cgroups_and_the_parents_made_for_them_are_removed_at_once(tmp_path: Path) -> None:
    mgr, leaves = manager(tmp_path)
    assert remove_if_empty(mgr.to_json())
    assert not any(leaf.exists() or leaf.parent.exists() for leaf in leaves)


def test_a_busy_cgroup_is_left_to_the_slow_path(tmp_path: Path) -> None:
    mgr, leaves = manager(tmp_path)
    (leaves[1] / "sub").mkdir()  # a cgroup the container made below its own (or processes: EBUSY)
    assert not remove_if_empty(mgr.to_json())
    assert leaves[1].exists()
    # The slow path (kill what is there, then destroy) finishes the job, the first directory already gone.
    (leaves[1] / "sub").rmdir()
    mgr.destroy()
    assert not any(leaf.exists() or leaf.parent.exists() for leaf in leaves)


def test_a_cgroup_someone_else_made_is_never_removed_by_the_shortcut(tmp_path: Path) -> None:
    mgr, leaves = manager(tmp_path, created=[str(tmp_path / "memory" / "engine" / "c1")])
    assert not remove_if_empty(mgr.to_json())
    assert all(leaf.exists() for leaf in leaves), "nothing may be removed before the slow path decides"


def test_the_freezer_is_the_last_cgroup_the_shortcut_removes(tmp_path: Path) -> None:
    # Stopped at a busy cgroup, the shortcut must leave the slow path a freezer to freeze the container with.
    leaves = {name: tmp_path / name / "c1" for name in ("freezer", "unified", "pids")}
    for leaf in leaves.values():
        leaf.mkdir(parents=True)
    (leaves["pids"] / "sub").mkdir()
    mgr = V1Manager(
        "c1",
        {name: str(leaf) for name, leaf in leaves.items()},
        {name: str(leaf.parent) for name, leaf in leaves.items()},
        created=[str(leaf) for leaf in leaves.values()],
    )
    assert not remove_if_empty(mgr.to_json())
    assert leaves["freezer"].exists() and leaves["unified"].exists()


def test_the_systemd_driver_and_unknown_states_are_left_to_their_manager(tmp_path: Path) -> None:
    mgr, leaves = manager(tmp_path)
    assert not remove_if_empty({**mgr.to_json(), "driver": "systemd"})  # its unit must be stopped
    assert not remove_if_empty({**mgr.to_json(), "version": 99})
    assert not remove_if_empty({**mgr.to_json(), "dirs": None})
    assert all(leaf.exists() for leaf in leaves)
