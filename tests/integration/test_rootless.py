"""Rootless engine, for real: a user the test creates runs `engine` itself, and podman run by that user drives it.

The user (tests/integration/rootless_user.py) has subordinate ids in /etc/subuid and /etc/subgid, an
XDG_RUNTIME_DIR of its own and a copy of the busybox rootfs it owns; everything of it is removed afterwards.
runc 1.1.5, run by the same user on the same bundles, is the reference where both can run.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import stat
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.rootless_user import RootlessUser

RUNC = "/usr/sbin/runc"
PURE_V2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
IMAGE = "localhost/engine-rootless-busybox:latest"
PODMAN_RUN = ["--network=none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@pytest.fixture(scope="module")
def user(rootfs: Path) -> Iterator[RootlessUser]:
    if shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.skip("useradd/runuser missing (passwd and util-linux)")
    with RootlessUser.create(rootfs) as made:
        yield made


@pytest.fixture(scope="module")
def base_config(user: RootlessUser) -> dict[str, Any]:
    """`engine spec --rootless` as the user writes it, pointed at the user's rootfs, without a terminal."""
    directory = user.mkdir("spec")
    result = user.engine("spec", "--rootless", "--bundle", str(directory))
    assert result.returncode == 0, result.stderr
    config = json.loads((directory / "config.json").read_text())
    config["root"]["path"] = str(user.rootfs)
    config["process"]["terminal"] = False
    return config


Edit = Callable[[dict[str, Any]], None]


class Containers:
    """Bundles and ids for one test; checks that the test left nothing of its containers behind."""

    def __init__(self, user: RootlessUser, config: dict[str, Any]) -> None:
        self.user, self.config, self.ids = user, config, []
        self.directory = user.mkdir(f"t-{uuid.uuid4().hex[:8]}")

    def new_id(self) -> str:
        self.ids.append(f"rl-{uuid.uuid4().hex[:10]}")
        return self.ids[-1]

    def bundle(self, args: list[str], *edits: Edit, name: str = "bundle") -> Path:
        bundle = self.directory / name
        bundle.mkdir(exist_ok=True)
        os.chown(bundle, self.user.uid, self.user.gid)
        config = copy.deepcopy(self.config)
        config["process"]["args"] = args
        for edit in edits:
            edit(config)
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    def run(self, args: list[str], *edits: Edit, cgroup: Path | None = None) -> tuple[int, str, str]:
        result = self.user.engine("run", "--bundle", str(self.bundle(args, *edits)), self.new_id(), cgroup=cgroup)
        return result.returncode, result.stdout, result.stderr

    def leftovers(self) -> dict[str, list[str]]:
        state = self.user.xdg / "engine"
        names = [n for n in os.listdir(state) if not n.startswith(".")] if state.exists() else []
        processes = []
        for pid in self.user.processes():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if any(i in cmdline for i in self.ids):
                processes.append(cmdline)
        return {"state directories": names, "processes": processes}


@pytest.fixture
def containers(user: RootlessUser, base_config: dict[str, Any]) -> Iterator[Containers]:
    made = Containers(user, base_config)
    yield made
    for container_id in made.ids:
        user.engine("delete", "--force", container_id)
    leftovers = made.leftovers()
    assert not any(leftovers.values()), f"left behind: {leftovers}"


def host_ids(pid: int) -> tuple[int, int]:
    """(uid, gid) of a process as the host sees them."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return int(fields["Uid"][0]), int(fields["Gid"][0])


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def mappings(uid_map: list[dict[str, int]], gid_map: list[dict[str, int]] | None = None) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["uidMappings"] = uid_map
        config["linux"]["gidMappings"] = gid_map if gid_map is not None else uid_map

    return edit


# == engine run by the user ===================================================================================


def test_lifecycle_as_the_user(containers: Containers, user: RootlessUser) -> None:
    cid = containers.new_id()
    bundle = containers.bundle(["sleep", "60"])
    created = user.engine("create", "--bundle", str(bundle), cid)
    assert created.returncode == 0, created.stderr
    state = json.loads(user.engine("state", cid).stdout)
    assert state["status"] == "created"
    # The state lives in the user's XDG_RUNTIME_DIR: engine/ made 0700 and sticky (as runc makes runc/).
    root = user.xdg / "engine"
    assert (root / cid / "state.json").is_file()
    mode = root.stat()
    assert (stat.S_IMODE(mode.st_mode), mode.st_uid) == (0o700 | stat.S_ISVTX, user.uid)
    # The init runs as the user on the host, container root inside.
    assert host_ids(state["pid"]) == (user.uid, user.gid)
    # ... and, still engine's interpreter, non-dumpable: not even its user may open /proc/<init>/exe (the id maps
    # were written while it was dumpable, and it is no longer).
    assert user.run(["readlink", f"/proc/{state['pid']}/exe"]).returncode != 0

    assert user.engine("start", cid).returncode == 0
    inside = user.engine(
        "exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups"
    )
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.split() == ["0", "0", str(user.uid), "1", "0", str(user.gid), "1", "deny"]
    assert json.loads(user.engine("state", cid).stdout)["status"] == "running"

    assert user.engine("kill", cid, "KILL").returncode == 0
    assert wait_until(lambda: json.loads(user.engine("state", cid).stdout)["status"] == "stopped")
    deleted = user.engine("delete", cid)
    assert deleted.returncode == 0, deleted.stderr
    assert not (root / cid).exists()


def test_run_in_the_foreground(containers: Containers) -> None:
    code, out, err = containers.run(["sh", "-c", "echo hello from $(hostname) as $(id -u); exit 3"])
    assert code == 3, err
    assert out == "hello from engine as 0\n"


def test_subordinate_ids_through_newuidmap(containers: Containers, user: RootlessUser) -> None:
    """More than the user's own id: newuidmap/newgidmap map the subordinate ids /etc/subuid gives the user."""
    (sub_uid, _), (sub_gid, _) = user.subuids[0], user.subgids[0]
    edit = mappings(
        [{"containerID": 0, "hostID": user.uid, "size": 1}, {"containerID": 1, "hostID": sub_uid, "size": 65536}],
        [{"containerID": 0, "hostID": user.gid, "size": 1}, {"containerID": 1, "hostID": sub_gid, "size": 65536}],
    )
    cid = containers.new_id()
    assert user.engine("create", "--bundle", str(containers.bundle(["sleep", "60"], edit)), cid).returncode == 0
    assert user.engine("start", cid).returncode == 0
    inside = user.engine("exec", cid, "cat", "/proc/self/uid_map", "/proc/self/gid_map")
    uid_map = ["0", str(user.uid), "1", "1", str(sub_uid), "65536"]
    gid_map = ["0", str(user.gid), "1", "1", str(sub_gid), "65536"]
    assert inside.stdout.split() == [*uid_map, *gid_map]
    pid_file = containers.directory / "exec.pid"
    detached = user.engine("exec", "--detach", "--pid-file", str(pid_file), "--user", "1000:1000", cid, "sleep", "60")
    assert detached.returncode == 0, detached.stderr
    assert host_ids(int(pid_file.read_text())) == (sub_uid + 999, sub_gid + 999)


def test_container_root_on_a_subordinate_id(containers: Containers, user: RootlessUser) -> None:
    """Container root is not the user: the exec fifo cannot be chown'ed to it, and it still starts."""
    (sub_uid, _), (sub_gid, _) = user.subuids[0], user.subgids[0]
    edit = mappings(
        [{"containerID": 0, "hostID": sub_uid, "size": 65536}], [{"containerID": 0, "hostID": sub_gid, "size": 65536}]
    )
    cid = containers.new_id()
    created = user.engine("create", "--bundle", str(containers.bundle(["sleep", "60"], edit)), cid)
    assert created.returncode == 0, created.stderr
    init = json.loads(user.engine("state", cid).stdout)["pid"]
    assert host_ids(init) == (sub_uid, sub_gid)
    assert user.engine("start", cid).returncode == 0
    assert user.engine("exec", cid, "id", "-u").stdout == "0\n"
    assert user.engine("kill", cid, "KILL").returncode == 0  # the user owns the container's user namespace
    assert wait_until(lambda: not os.path.exists(f"/proc/{init}"))


def test_bind_mount_of_a_directory_the_user_owns(containers: Containers, user: RootlessUser) -> None:
    data = user.mkdir(f"data-{uuid.uuid4().hex[:6]}")
    (data / "in").write_text("from the host\n")

    def bind(*options: str) -> Edit:
        return lambda c: c["mounts"].append(
            {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", *options]}
        )

    code, out, err = containers.run(["sh", "-c", "cat /data/in; echo from the container > /data/out"], bind("rw"))
    assert code == 0, err
    assert out == "from the host\n"
    assert (data / "out").read_text() == "from the container\n"
    assert (data / "out").stat().st_uid == user.uid
    code, out, err = containers.run(["sh", "-c", "echo no > /data/ro"], bind("ro"))
    assert code != 0 and "Read-only file system" in out + err
    assert not (data / "ro").exists()


def test_read_only_bind_of_a_nosuid_mount(containers: Containers, user: RootlessUser) -> None:
    """Remounting a bind read-only must keep the source mount's nosuid/nodev, which a user namespace may not
    clear (the kernel refuses with EPERM): a tmpfs of the test's own, mounted nosuid,nodev."""
    source = user.mkdir(f"nosuid-{uuid.uuid4().hex[:6]}")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "nosuid,nodev,mode=0755", "tmpfs", str(source)], check=True)
    try:
        os.chown(source, user.uid, user.gid)
        edit = lambda c: c["mounts"].append(  # noqa: E731
            {"destination": "/data", "type": "bind", "source": str(source), "options": ["rbind", "ro"]}
        )
        code, out, err = containers.run(["sh", "-c", "grep ' /data ' /proc/self/mountinfo"], edit)
        assert code == 0, err
        options = out.split()[5].split(",")
        assert {"ro", "nosuid", "nodev"} <= set(options), out
    finally:
        subprocess.run(["umount", str(source)], check=True)


def test_cgroups_without_delegation(containers: Containers, user: RootlessUser) -> None:
    """No limits asked: the container runs in the caller's cgroup; no cgroup of its own is made anywhere."""
    code, out, err = containers.run(["cat", "/proc/self/cgroup"])
    assert code == 0, err
    # A cgroup namespace rooted at the caller's own cgroups: "/" everywhere inside.
    assert {line.split(":", 2)[2] for line in out.splitlines()} == {"/"}
    # Device rules alone are not limits (runc ignores the devices controller rootless too).
    code, _, err = containers.run(
        ["true"], lambda c: c["linux"].update(resources={"devices": [{"allow": False, "access": "rwm"}]})
    )
    assert code == 0, err


@pytest.fixture
def delegated(user: RootlessUser) -> Iterator[Path]:
    """A cgroup v2 subtree delegated to the user as systemd's Delegate=yes makes one (the directory and its
    cgroup.procs, cgroup.subtree_control and cgroup.threads are the user's), with a leaf for the user's shell:
    the container's cgroup goes beside it (engine/<id> below the parent of the caller's cgroup, as runc's)."""
    root = Path("/sys/fs/cgroup")
    (root / "cgroup.subtree_control").write_text("+memory +pids")
    top = root / f"engine-rootless-{uuid.uuid4().hex[:8]}"
    leaf = top / "leaf"
    leaf.mkdir(parents=True)
    for directory in (top, leaf):
        for name in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
            os.chown(directory / name, user.uid, user.gid)
    try:
        yield leaf
    finally:
        # Torn down before `containers` deletes what a failed test left: kill it all here (cgroup.kill, 5.14).
        (top / "cgroup.kill").write_text("1")
        for directory in sorted((d for d, _, _ in os.walk(top)), key=len, reverse=True):
            wait_until(lambda d=directory: not Path(d, "cgroup.procs").read_text().strip())
            os.rmdir(directory)


@pytest.mark.skipif(not PURE_V2, reason="needs a pure cgroup v2 host (test_rootless_in_the_cgroup2_guest runs it)")
def test_delegated_cgroup_v2(containers: Containers, user: RootlessUser, delegated: Path) -> None:
    limits = {"memory": {"limit": 32 << 20}, "pids": {"limit": 20}}
    script = "cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max"

    def limited(config: dict[str, Any]) -> None:
        config["linux"]["resources"] = limits

    # Not from the delegated subtree (the caller sits in the root cgroup): refused, in one line.
    code, _, err = containers.run(["true"], limited)
    assert code != 0 and "linux.resources.memory: a rootless container gets a cgroup only in a delegated" in err
    code, out, err = containers.run(["sh", "-c", script], limited, cgroup=delegated)
    assert code == 0, err
    assert out.split() == ["0::/", str(32 << 20), "20"]

    cid = containers.new_id()
    bundle = containers.bundle(["sleep", "60"], limited, name="detached")
    started = user.engine("run", "--detach", "--bundle", str(bundle), cid, cgroup=delegated)
    assert started.returncode == 0, started.stderr
    cgroup = delegated.parent / "engine" / cid
    assert (cgroup / "memory.max").read_text() == f"{32 << 20}\n"
    assert user.engine("pause", cid).returncode == 0
    assert json.loads(user.engine("state", cid).stdout)["status"] == "paused"
    assert "frozen 1" in (cgroup / "cgroup.events").read_text()
    assert user.engine("resume", cid).returncode == 0
    assert user.engine("update", "--memory", str(64 << 20), cid).returncode == 0
    # exec moves its process into the container's cgroup: from the delegated subtree, as a user's shell is.
    inside = user.engine("exec", cid, "cat", "/sys/fs/cgroup/memory.max", cgroup=delegated)
    assert (inside.returncode, inside.stdout) == (0, f"{64 << 20}\n"), inside.stderr
    assert user.engine("delete", "--force", cid).returncode == 0
    assert not cgroup.exists()


@pytest.mark.skipif(
    os.environ.get("ENGINE_CGROUP2_GUEST") != "1" or PURE_V2,
    reason="set ENGINE_CGROUP2_GUEST=1 to boot the qemu cgroup v2 guest and run the delegated cgroup test there",
)
def test_rootless_in_the_cgroup2_guest() -> None:
    from tests.conftest import run_in_cgroup2_guest

    command = [".venv/bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts="]
    result = run_in_cgroup2_guest([*command, "tests/integration/test_rootless.py", "-k", "delegated_cgroup_v2"])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout, result.stdout[-3000:]


def test_oom_score_adj_raised(containers: Containers) -> None:
    code, out, err = containers.run(["cat", "/proc/self/oom_score_adj"], lambda c: c["process"].update(oomScoreAdj=500))
    assert (code, out) == (0, "500\n"), err


def _private_directory(user: RootlessUser) -> str:
    """A path the user cannot reach: below a directory of root's with mode 0700."""
    hidden = user.base / f"hidden-{uuid.uuid4().hex[:6]}"
    (hidden / "data").mkdir(parents=True)
    hidden.chmod(0o700)
    return str(hidden / "data")


def _no_user_namespace(config: dict[str, Any]) -> None:
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "user"]


def _sysfs(config: dict[str, Any]) -> None:
    for mount in config["mounts"]:
        if mount["destination"] == "/sys":
            mount.update(type="sysfs", source="sysfs", options=["nosuid", "noexec", "nodev", "ro"])


REFUSED: list[tuple[str, Callable[[RootlessUser], Edit], str]] = [
    ("no user namespace", lambda u: _no_user_namespace, "linux.namespaces: run by uid"),
    (
        "ids not in /etc/subuid",
        lambda u: lambda c: c["linux"]["uidMappings"].append({"containerID": 1, "hostID": 4000000000, "size": 10}),
        "linux.uidMappings[1]: host uids 4000000000-4000000009 are not yours to map: /etc/subuid gives",
    ),
    (
        "a memory limit",
        lambda u: lambda c: c["linux"].update(resources={"memory": {"limit": 64 << 20}}),
        "linux.resources.memory: a rootless container gets a cgroup only in a delegated cgroup v2 tree",
    ),
    (
        "a cgroupsPath",
        lambda u: lambda c: c["linux"].update(cgroupsPath=f"/engine-rootless-{uuid.uuid4().hex[:6]}"),
        "linux.cgroupsPath: a rootless container gets a cgroup only in a delegated cgroup v2 tree",
    ),
    (
        "a lower oomScoreAdj",
        lambda u: lambda c: c["process"].update(oomScoreAdj=-500),
        "process.oomScoreAdj -500: Permission denied",
    ),
    (
        "a bind source the user cannot reach",
        lambda u: (
            lambda source: (
                lambda c: c["mounts"].append(
                    {"destination": "/data", "type": "bind", "source": source, "options": ["rbind"]}
                )
            )
        )(_private_directory(u)),
        "mounts[7]: /data: source ",
    ),
    ("sysfs without a network namespace", lambda u: _sysfs, "sysfs needs a network namespace of the container's own"),
]


@pytest.mark.parametrize("what", [r[0] for r in REFUSED])
def test_what_a_user_cannot_do_is_one_line(containers: Containers, user: RootlessUser, what: str) -> None:
    _, make_edit, expected = next(r for r in REFUSED if r[0] == what)
    if what in ("a memory limit", "a cgroupsPath") and PURE_V2:
        pytest.skip("a pure cgroup v2 host: whether the user's cgroup is delegated depends on its session")
    code, out, err = containers.run(["true"], make_edit(user))
    assert code != 0
    assert out == ""
    assert err.startswith("engine: ") and err.count("\n") == 1, err
    assert expected in err, err


# == state directory ==========================================================================================


def test_state_directory_needs_xdg_runtime_dir(user: RootlessUser) -> None:
    unset = user.engine("list", env=user.env(XDG_RUNTIME_DIR=None))
    assert unset.returncode == 1
    assert unset.stderr.startswith("engine: XDG_RUNTIME_DIR is not set") and unset.stderr.count("\n") == 1
    # runc falls back to /run/runc and fails there.
    runc = user.run([RUNC, "list"], env=user.env(XDG_RUNTIME_DIR=None))
    assert runc.returncode != 0 and "permission denied" in runc.stderr

    foreign = user.engine("list", env=user.env(XDG_RUNTIME_DIR=str(user.base)))  # root's
    assert foreign.returncode == 1
    assert f"XDG_RUNTIME_DIR {user.base} belongs to uid 0, not to uid {user.uid}" in foreign.stderr
    assert foreign.stderr.count("\n") == 1

    # An explicit --root wins, with or without XDG_RUNTIME_DIR.
    own = user.mkdir(f"state-{uuid.uuid4().hex[:6]}")
    explicit = user.engine("--root", str(own), "list", "-q", env=user.env(XDG_RUNTIME_DIR=None))
    assert (explicit.returncode, explicit.stdout) == (0, ""), explicit.stderr
    # spec needs no state directory at all.
    spec_dir = user.mkdir(f"spec-{uuid.uuid4().hex[:6]}")
    spec = user.engine("spec", "--rootless", "--bundle", str(spec_dir), env=user.env(XDG_RUNTIME_DIR=None))
    assert spec.returncode == 0, spec.stderr


# == side by side with runc ===================================================================================


def test_spec_rootless_as_runc(user: RootlessUser) -> None:
    ours, theirs = user.mkdir("spec-engine"), user.mkdir("spec-runc")
    assert user.engine("spec", "--rootless", "--bundle", str(ours)).returncode == 0
    assert user.run([RUNC, "spec", "--rootless"], cwd=theirs).returncode == 0
    engine_config = json.loads((ours / "config.json").read_text())
    runc_config = json.loads((theirs / "config.json").read_text())
    # What differs in the plain `spec` already: the version, the hostname, runc 1.1.5's ambient capabilities,
    # and engine's cgroup namespace (runc adds one on cgroup v2 hosts only).
    for config in (engine_config, runc_config):
        config.pop("ociVersion")
        config.pop("hostname")
        config["process"]["capabilities"].pop("ambient", None)
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "cgroup"]
    assert engine_config == runc_config
    linux = runc_config["linux"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": user.uid, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": user.gid, "size": 1}]
    assert "resources" not in linux and {"type": "network"} not in linux["namespaces"]


def test_side_by_side_with_runc(containers: Containers, user: RootlessUser) -> None:
    script = (
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; "
        "grep -E '^Cap(Eff|Bnd)' /proc/self/status; ls /dev; cat /proc/self/oom_score_adj"
    )

    def edit(config: dict[str, Any]) -> None:
        config["hostname"] = "same"
        config["process"]["oomScoreAdj"] = 100

    bundle = containers.bundle(["sh", "-c", script], edit, name="both")
    runc_root = user.mkdir(f"runc-{uuid.uuid4().hex[:6]}")
    runc_id = f"rl-runc-{uuid.uuid4().hex[:8]}"
    runc = user.run([RUNC, "--root", str(runc_root), "run", "--bundle", str(bundle), runc_id])
    engine = user.engine("run", "--bundle", str(bundle), containers.new_id())
    assert runc.returncode == 0, runc.stderr
    assert engine.returncode == 0, engine.stderr
    assert engine.stdout == runc.stdout


# == podman, run by the user ==================================================================================


@pytest.fixture(scope="module")
def podman(user: RootlessUser) -> list[str]:
    """podman as the user, with engine as its runtime and the busybox rootfs imported as an image. Its
    storage (vfs: nothing to mount) is the user's, ~/.local/share/containers, gone with the user."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (setup.sh installs it)")
    base = [
        "podman",
        "--runtime",
        user.engine_path,
        "--log-level",
        "error",
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
    ]
    archive = user.base / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(user.rootfs, arcname=".")
    os.chown(archive, user.uid, user.gid)
    imported = user.run([*base, "import", str(archive), IMAGE], timeout=180)
    assert imported.returncode == 0, imported.stderr
    return base


def test_podman_run(podman: list[str], user: RootlessUser) -> None:
    result = user.run([*podman, "run", "--rm", *PODMAN_RUN, IMAGE, "sh", "-c", "cat /proc/self/uid_map; exit 7"])
    assert result.returncode == 7, result.stderr
    # podman's own user namespace (its pause process), made with newuidmap from /etc/subuid: engine runs in it
    # as uid 0 without real root, and makes none of its own.
    (sub_uid, count) = user.subuids[0]
    assert result.stdout.split() == ["0", str(user.uid), "1", "1", str(sub_uid), str(count)]


def test_podman_detach_exec_stop(podman: list[str], user: RootlessUser) -> None:
    name = f"rl-{uuid.uuid4().hex[:8]}"
    started = user.run([*podman, "run", "-d", "--name", name, *PODMAN_RUN, IMAGE, "sh", "-c", "echo up; sleep 100"])
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    try:
        # engine keeps its state in the user's XDG_RUNTIME_DIR, found from inside podman's user namespace.
        assert (user.xdg / "engine" / container / "state.json").is_file()
        inside = user.run([*podman, "exec", name, "sh", "-c", "id -u; ls /dev/null"])
        assert (inside.returncode, inside.stdout) == (0, "0\n/dev/null\n"), inside.stderr
        assert "up" in user.run([*podman, "logs", name]).stdout
        assert user.run([*podman, "stop", "-t", "1", name]).returncode == 0
        status = user.run([*podman, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name])
        assert status.stdout.split() == ["exited", "137"]
    finally:
        user.run([*podman, "rm", "-f", name])
    assert not (user.xdg / "engine" / container).exists()


def test_podman_unshare_runs_engine_as_root_of_a_user_namespace(containers: Containers, user: RootlessUser) -> None:
    """`podman unshare` runs a command in podman's user namespace, as its root: engine must see that it has
    no real root (runc: /proc/self/uid_map), and behave rootless: no cgroup, host devices bound, not made."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (setup.sh installs it)")

    def without_user_namespace(config: dict[str, Any]) -> None:
        _no_user_namespace(config)
        config["linux"].pop("uidMappings")
        config["linux"].pop("gidMappings")
        config["linux"]["namespaces"].append({"type": "network"})
        _sysfs(config)  # its own network namespace: sysfs may be mounted

    bundle = containers.bundle(
        ["sh", "-c", "id -u; grep -c ' /dev/null ' /proc/self/mountinfo"], without_user_namespace
    )
    cid = containers.new_id()
    result = user.run(
        ["podman", "--storage-driver", "vfs", "unshare", user.engine_path, "run", "--bundle", str(bundle), cid]
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "1"]  # /dev/null: the host's, bound (mknod is refused)
