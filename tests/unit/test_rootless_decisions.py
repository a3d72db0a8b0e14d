"""The rootless decisions, without root: the default --root, subordinate id checks, spec --rootless, what a user's
create refuses, which configs need a cgroup. tests/integration/test_rootless.py runs the real thing."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from engine import rootless
from engine.errors import ConfigError, EngineError
from engine.rootless import cgroups as rootless_cgroups
from engine.rootless import checks, idmap, state_root
from engine.rootless.spec import to_rootless
from engine.spec.default import default_config


@pytest.fixture
def as_user(monkeypatch: pytest.MonkeyPatch) -> int:
    """engine started by uid 4242 (the module's own idea of the caller, and os.geteuid)."""
    monkeypatch.setattr(rootless, "_CALLER_EUID", 4242)
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    return 4242


# == the default --root ======================================================================================


def test_root_keeps_run_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(state_root, "running_in_user_namespace", lambda: False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/0")  # a root login session's: ignored, as runc does
    assert state_root.default_root() == "/run/engine"


def test_root_of_a_user_namespace_uses_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(tmp_path).st_uid)
    monkeypatch.setattr(state_root, "running_in_user_namespace", lambda: True)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("USER", "alice")
    assert state_root.default_root() == str(tmp_path / "engine")
    monkeypatch.setenv("USER", "root")  # runc: root by name keeps the system's directory
    assert state_root.default_root() == "/run/engine"


def test_user_gets_a_sticky_private_directory_in_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(tmp_path).st_uid or 4242)
    if os.stat(tmp_path).st_uid == 0:
        os.chown(tmp_path, 4242, 4242)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    root = state_root.default_root()
    assert root == str(tmp_path / "engine")
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700 | stat.S_ISVTX
    assert state_root.default_root() == root  # made once, then found


@pytest.mark.parametrize(
    ("xdg", "message"),
    [
        (None, "XDG_RUNTIME_DIR is not set: run by uid 4242"),
        ("relative/dir", "XDG_RUNTIME_DIR 'relative/dir' is not an absolute path"),
        ("/nonexistent-engine-xdg", "XDG_RUNTIME_DIR /nonexistent-engine-xdg: No such file or directory"),
        ("/", "XDG_RUNTIME_DIR / belongs to uid 0, not to uid 4242"),
    ],
)
def test_user_without_a_usable_xdg_runtime_dir(
    monkeypatch: pytest.MonkeyPatch, as_user: int, xdg: str | None, message: str
) -> None:
    if xdg is None:
        monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    else:
        monkeypatch.setenv("XDG_RUNTIME_DIR", xdg)
    with pytest.raises(EngineError) as raised:
        state_root.default_root()
    assert str(raised.value).startswith(message)
    assert "(usually /run/user/4242) or pass --root DIR" in str(raised.value)
    assert "\n" not in str(raised.value)


# == subordinate ids =========================================================================================


def _maps(*triples: tuple[int, int, int]) -> list[dict[str, int]]:
    return [{"containerID": c, "hostID": h, "size": s} for c, h, s in triples]


def test_only_own_id() -> None:
    assert idmap.only_own_id(_maps((0, 1000, 1)), 1000)
    assert not idmap.only_own_id(_maps((0, 1000, 2)), 1000)
    assert not idmap.only_own_id(_maps((0, 1000, 1), (1, 100000, 10)), 1000)
    assert not idmap.only_own_id(_maps((0, 1001, 1)), 1000)


def test_subordinate_ranges_by_name_or_number(tmp_path: Path) -> None:
    path = tmp_path / "subuid"
    path.write_text("alice:100000:65536\n# comment\nbob:200000:10\n4242:300000:5\nbroken line\nalice:x:1\n")
    assert idmap.subordinate_ranges(str(path), "alice", 4242) == [(100000, 65536), (300000, 5)]
    assert idmap.subordinate_ranges(str(tmp_path / "missing"), "alice", 4242) == []


def test_check_subordinate_ids_names_the_mapping(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pwd

    path = tmp_path / "subuid"
    path.write_text("alice:100000:65536\n")
    monkeypatch.setitem(idmap._KINDS, "uidMappings", ("uid_map", "newuidmap", str(path), "uid"))
    monkeypatch.setattr(os, "getuid", lambda: 4242)
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: pwd.struct_passwd(("alice", "x", 4242, 4242, "", "/", "/bin/sh")))
    idmap.check_subordinate_ids("uidMappings", _maps((0, 4242, 1), (1, 100000, 65536)))
    with pytest.raises(ConfigError) as raised:
        idmap.check_subordinate_ids("uidMappings", _maps((0, 4242, 1), (1, 100000, 65537)))
    assert str(raised.value) == (
        f"config.json: linux.uidMappings[1]: host uids 100000-165536 are not yours to map: {path} gives alice"
        " (uid 4242) 100000-165535"
    )


# == spec --rootless =========================================================================================


def test_to_rootless() -> None:
    config = to_rootless(default_config(), 4242, 4343)
    linux = config["linux"]
    assert linux["uidMappings"] == _maps((0, 4242, 1))
    assert linux["gidMappings"] == _maps((0, 4343, 1))
    assert [ns["type"] for ns in linux["namespaces"]] == ["pid", "ipc", "uts", "mount", "cgroup", "user"]
    assert "resources" not in linux
    sys_mount = next(m for m in config["mounts"] if m["destination"] == "/sys")
    assert sys_mount == {
        "destination": "/sys",
        "type": "none",
        "source": "/sys",
        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
    }
    assert not [o for m in config["mounts"] for o in m.get("options", []) if o.startswith(("uid=", "gid="))]


# == what a user's create refuses ============================================================================


def _config(**linux: Any) -> dict[str, Any]:
    config = to_rootless(default_config(), 4242, 4242)
    config["linux"].update(linux)
    return config


def test_root_is_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rootless, "_CALLER_EUID", 0)
    checks.check_config(default_config())  # no user namespace: fine for root


def test_user_needs_a_user_namespace(as_user: int) -> None:
    checks.check_config(_config())
    with pytest.raises(
        ConfigError, match=r"linux.namespaces: run by uid 4242 \(rootless\), the container needs a user"
    ):
        checks.check_config(default_config())


def test_user_namespace_joined_by_path_is_not_checked(as_user: int) -> None:
    config = default_config()
    config["linux"]["namespaces"].append({"type": "user", "path": "/proc/1/ns/user"})
    checks.check_config(config)


def test_unmapped_mount_ids(as_user: int) -> None:
    config = _config()
    config["mounts"][2]["options"].append("gid=5")
    with pytest.raises(ConfigError) as raised:
        checks.check_config(config)
    assert str(raised.value) == (
        "config.json: mounts[2].options: gid=5 is not mapped by linux.gidMappings"
        " (rootless: map it, or drop the option)"
    )
    config["linux"]["gidMappings"] = _maps((0, 4242, 1), (1, 100000, 65536))
    checks.check_config(config)


# == which configs need a cgroup =============================================================================


@pytest.mark.parametrize(
    ("linux", "field"),
    [
        ({}, None),
        ({"resources": {}}, None),
        ({"resources": {"devices": [{"allow": False, "access": "rwm"}]}}, None),
        ({"resources": {"memory": {"limit": 1 << 26}}}, "linux.resources.memory"),
        ({"resources": {"pids": {"limit": 10}, "devices": []}}, "linux.resources.pids"),
        ({"cgroupsPath": "/x"}, "linux.cgroupsPath"),
    ],
)
def test_field_needing_a_cgroup(linux: dict[str, Any], field: str | None) -> None:
    assert rootless_cgroups.field_needing_a_cgroup(linux) == field


def test_without_devices(as_user: int) -> None:
    resources = {"devices": [{"allow": False, "access": "rwm"}], "pids": {"limit": 5}}
    assert rootless_cgroups.without_devices(resources) == {"pids": {"limit": 5}}


def test_root_keeps_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rootless, "_CALLER_EUID", 0)
    monkeypatch.setattr(rootless, "running_in_user_namespace", lambda: False)
    resources = {"devices": [{"allow": False, "access": "rwm"}]}
    assert rootless_cgroups.without_devices(resources) is resources


def test_create_asks_once_whether_it_is_rootless(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each asking reads /proc/self/uid_map: create's cgroup plan asks once and passes the answer on.
    import engine.cgroups
    from engine import create
    from engine.log import Log

    asked: list[int] = []
    planned: list[tuple[Any, Any, str]] = []

    class Manager:
        def plan(self, resources: Any, *, linux_devices: Any, device_rules: str) -> str:
            planned.append((resources, linux_devices, device_rules))
            return "plan"

    monkeypatch.setattr(rootless, "_CALLER_EUID", 0)  # root, but in a user namespace: rootless all the same
    monkeypatch.setattr(rootless, "running_in_user_namespace", lambda: asked.append(1) or True)
    monkeypatch.setattr(rootless_cgroups, "delegation_problem", lambda path, cid: None)  # a delegated cgroup
    monkeypatch.setattr(engine.cgroups, "manager_for", lambda *args, **kwargs: Manager())
    options = create.CreateOptions(container_id="c1", bundle="/b")
    linux: dict[str, Any] = {"resources": {"devices": [{"allow": False, "access": "rwm"}], "pids": {"limit": 5}}}
    result = create._plan_cgroups({"linux": linux}, "c1", options, Log(None), None)  # type: ignore[typeddict-item]
    assert result is not None and result[1] == "plan"
    assert planned == [({"pids": {"limit": 5}}, None, "if given")]  # the rootless answers, all three
    assert len(asked) == 1
