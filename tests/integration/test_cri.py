"""Kubernetes minus the kubelet: the kubelet's CRI calls, over gRPC, to containerd's CRI plugin running engine
as the runtime handler of a RuntimeClass (containerd's runc shim with BinaryName = engine).

The containerd config and the RuntimeClass are read from docs/kubernetes.md (tests/cri/config.py). The test
starts a private containerd (own root, state, socket, CNI conf dir and engine Root), imports a locally built
pause image and the busybox app image (tests/cri/images.py; no registry), and gives the pod a CNI bridge of its
own: a private subnet with no IPv4 address on the host, no gateway and no masquerading, so nothing leaves the bridge.

Parametrized on the cgroup driver: cgroupfs here; systemd where systemd is PID 1 and engine has the driver (the
systemd guest, tests/systemd-guest/). The CRI messages are tests/cri/cri.proto, compiled at test time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

from tests.cri import config as cri_config
from tests.cri import images

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "cri"
ENGINE = str(Path(sys.executable).with_name("engine"))
PAUSE_IMAGE = "localhost/engine-cri-pause:test"
APP_IMAGE = "localhost/engine-cri-busybox:test"
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins (the doc's bin_dir)
# The pod network: a bridge of the test's own with this subnet, no host address on it and no route out.
POD_SUBNET_PREFIX = "10.250.77."
# Seconds a CRI call may take; the qemu guests (software emulation) need far more than this machine.
CALL_DEADLINE = float(os.environ.get("ENGINE_CRI_DEADLINE", "60"))
K8S_NAMESPACE = "k8s.io"  # the containerd namespace of the CRI plugin; the shim appends it to Root

_missing = [tool for tool in ("containerd", "ctr", "gcc") if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(
    bool(_missing) or not (CNI_BIN_DIR / "bridge").exists(),
    reason=f"needs containerd, ctr, gcc and containernetworking-plugins (setup.sh installs them); missing: "
    f"{', '.join(_missing) or CNI_BIN_DIR / 'bridge'}",
)


# --- cgroups: where a pod and its containers land, per driver -----------------------------------------------


def cgroup2_only() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


@dataclass(frozen=True)
class Driver:
    name: str

    @property
    def systemd(self) -> bool:
        return self.name == "systemd"

    def pod_parent(self, pod: str) -> str:
        """The kubelet's cgroup_parent for a pod: a cgroupfs path, or a systemd slice (a dash would nest it)."""
        return f"enginecri{pod.replace('-', '')}.slice" if self.systemd else f"/engine-cri-{pod}"

    def cgroup_of(self, parent: str, container_id: str) -> str:
        """The container's cgroup as /proc/<pid>/cgroup shows it (containerd's cgroupsPath, resolved)."""
        if self.systemd:
            return f"/{parent}/cri-containerd-{container_id}.scope"
        return f"{parent}/{container_id}"

    def parent_dir(self, parent: str) -> str:
        return f"/{parent}" if self.systemd else parent


def systemd_lane_missing() -> str | None:
    """Why the systemd driver cannot be tested on this host, or None."""
    if not os.path.isdir("/run/systemd/system"):
        return "systemd is not PID 1 on this host (the systemd guest, tests/systemd-guest/, runs this lane)"
    with tempfile.TemporaryDirectory() as root:
        probe = subprocess.run([ENGINE, "--root", root, "--systemd-cgroup", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"engine has no systemd cgroup driver yet: {probe.stderr.strip()}"
    return None


def cgroup_mounts() -> list[Path]:
    """Every cgroup hierarchy's mount point (v1 controllers, named ones, cgroup2)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] in ("cgroup", "cgroup2"):
                found.append(Path(left.split()[4]))
    return found


def proc_cgroups(pid: int) -> dict[str, str]:
    """/proc/<pid>/cgroup as {hierarchy controllers ("" for cgroup2): path}."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    return {controllers: path for _, controllers, path in (line.split(":", 2) for line in lines)}


def child_cgroups(parent: str) -> list[Path]:
    """The cgroups below `parent` (a path from the hierarchy's root), in every hierarchy."""
    found = []
    for mount in cgroup_mounts():
        directory = mount / parent.lstrip("/")
        if directory.is_dir():
            found.extend(d for d in directory.iterdir() if d.is_dir())
    return found


def remove_pod_cgroup(driver: Driver, parent: str) -> None:
    """What the kubelet does once a pod is gone: remove its cgroup parent (a slice: stop the unit)."""
    if driver.systemd:
        subprocess.run(["systemctl", "stop", parent.lstrip("/")], capture_output=True, timeout=60)
    for mount in cgroup_mounts():
        path = mount / parent.lstrip("/")
        if path.is_dir():
            for directory in sorted(path.glob("**/"), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):  # busy: the test's assertions say why
                    directory.rmdir()


def cgroup_file(cgroup: str, v1: tuple[str, str], v2: str) -> Path:
    """A container's cgroup file on the host: (controller dir, file) on v1, the cgroup2 file on pure v2."""
    if cgroup2_only():
        return Path("/sys/fs/cgroup") / cgroup.lstrip("/") / v2
    return Path("/sys/fs/cgroup") / v1[0] / cgroup.lstrip("/") / v1[1]


# --- the host: processes, mounts, namespaces ---------------------------------------------------------------


def processes_mentioning(*needles: str) -> list[str]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(n in cmdline for n in needles) and "pytest" not in cmdline:
            found.append(f"{name}: {cmdline}")
    return found


def mounts_mentioning(*needles: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.strip() for line in f if any(n in line for n in needles)]


def namespace(pid: int, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)


# --- the private containerd -------------------------------------------------------------------------------


@dataclass
class Cri:
    """A running private containerd with the CRI plugin, a client for it, and what the test must clean."""

    driver: Driver
    work: Path
    socket: Path
    engine_root: Path  # the Root option; engine's --root is <Root>/k8s.io
    token: str
    bridge: str
    handler: str
    client: Any
    pb: ModuleType
    config: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    sandboxes: list[str] = field(default_factory=list)
    cgroup_parents: list[str] = field(default_factory=list)

    def call(self, method: str, **fields: Any) -> Any:
        start = time.monotonic()
        try:
            return self.client.call(method, deadline=CALL_DEADLINE, **fields)
        finally:
            self.timings[method] = self.timings.get(method, 0.0) + time.monotonic() - start

    def engine(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [ENGINE, "--root", str(self.engine_root / K8S_NAMESPACE), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def engine_state_dirs(self) -> list[str]:
        root = self.engine_root / K8S_NAMESPACE
        return sorted(n for n in os.listdir(root) if not n.startswith(".")) if root.exists() else []


def write_cni_config(conf_dir: Path, work: Path, bridge: str) -> None:
    conf_dir.mkdir(parents=True)
    conflist = {
        "cniVersion": "1.0.0",
        "name": f"engine-cri-{bridge}",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                # No address on the host side, no default route, no NAT: the pod reaches nothing but the bridge.
                "isGateway": False,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(work / "cni-ipam"),  # not the host's /var/lib/cni
                    "ranges": [[{"subnet": POD_SUBNET_PREFIX + "0/24"}]],
                },
            }
        ],
    }
    (conf_dir / "10-engine-test.conflist").write_text(json.dumps(conflist))


def start_containerd(config_path: Path, socket: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        daemon = subprocess.Popen(
            ["containerd", "--config", str(config_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while subprocess.run(["ctr", "--address", str(socket), "version"], capture_output=True).returncode != 0:
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"containerd did not start: {log.read_text()[-3000:]}")
        time.sleep(0.1)
    return daemon


def import_images(socket: Path, rootfs: Path) -> None:
    ctr = ["ctr", "--address", str(socket), "--namespace", K8S_NAMESPACE]
    for archive in (images.pause_archive(CACHE, PAUSE_IMAGE), images.busybox_archive(CACHE, APP_IMAGE, rootfs)):
        subprocess.run([*ctr, "images", "import", str(archive)], check=True, capture_output=True, timeout=120)


def teardown(cri: Cri | None, daemon: subprocess.Popen | None, work: Path, bridge: str, socket: Path) -> None:
    """Undo everything, whatever state a failed test left: pods, containerd, shims, mounts, bridge, cgroups."""
    if cri is not None:
        for sandbox in cri.sandboxes:
            for method in ("StopPodSandbox", "RemovePodSandbox"):
                try:
                    cri.client.call(method, pod_sandbox_id=sandbox, deadline=60)
                except Exception as err:  # the test's own assertions say what went wrong
                    print(f"teardown: {method} {sandbox}: {err}", file=sys.stderr)
        cri.client.close()
    if daemon is not None:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(10)
    # Shims of pods that could not be removed outlive containerd: ours name our socket on their command line.
    for line in processes_mentioning(f"-address {socket}"):
        os.kill(int(line.split(":")[0]), 9)
    if cri is not None:
        for container_id in cri.engine_state_dirs():
            cri.engine("delete", "--force", container_id)
    for line in reversed(mounts_mentioning(f" {work}/")):
        subprocess.run(["umount", "-l", line.split()[4]], capture_output=True)
    subprocess.run(["ip", "link", "delete", bridge], capture_output=True)
    if cri is not None:
        for parent in cri.cgroup_parents:
            remove_pod_cgroup(cri.driver, parent)
    # Shown by pytest only when a test failed: containerd's own account of what went wrong.
    log = work / "containerd.log"
    if log.exists():
        problems = [line for line in log.read_text().splitlines() if "level=error" in line or "level=warn" in line]
        print("containerd errors and warnings:\n" + "\n".join(problems[-30:]), file=sys.stderr)
    subprocess.run(["umount", "-l", str(work)], check=True)


@pytest.fixture(scope="module", params=["cgroupfs", "systemd"])
def cri(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, rootfs: Path) -> Iterator[Cri]:
    driver = Driver(request.param)
    if driver.systemd and (reason := systemd_lane_missing()):
        pytest.skip(reason)
    from tests.cri.client import CriClient, compile_messages

    started = time.monotonic()
    token = uuid.uuid4().hex[:8]
    work = tmp_path_factory.mktemp(f"cri-{driver.name}")
    # containerd's snapshots are overlay mounts, whose directories must not be on an overlay themselves (as /tmp
    # is in the qemu guests): all the test's state goes on a tmpfs of its own.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700,size=512m", "tmpfs", str(work)], check=True)
    socket = work / "containerd.sock"
    bridge = f"cri{token}"  # interface names are at most 15 characters
    engine_root = work / "engine"
    cni_conf_dir = work / "cni"
    daemon = None
    cri = None
    try:
        write_cni_config(cni_conf_dir, work, bridge)
        text, parsed = cri_config.containerd_config(
            work=work,
            socket=socket,
            engine=ENGINE,
            engine_root=engine_root,
            cni_conf_dir=cni_conf_dir,
            sandbox_image=PAUSE_IMAGE,
            systemd_cgroup=driver.systemd,
        )
        (work / "config.toml").write_text(text)
        daemon = start_containerd(work / "config.toml", socket, work / "containerd.log")
        containerd_up = time.monotonic()
        client = CriClient(socket, compile_messages(CACHE))
        cri = Cri(
            driver=driver,
            work=work,
            socket=socket,
            engine_root=engine_root,
            token=token,
            bridge=bridge,
            handler=cri_config.doc_runtime_handler(),
            client=client,
            pb=client.pb,
            config=parsed,
        )
        import_images(socket, rootfs)
        cri.timings["containerd start"] = containerd_up - started
        cri.timings["images (build or cache) + import"] = time.monotonic() - containerd_up
        yield cri
    finally:
        try:
            teardown(cri, daemon, work, bridge, socket)
        finally:
            if cri is not None:
                cri.timings["total incl. teardown"] = time.monotonic() - started
                summary = ", ".join(f"{k} {v:.2f}" for k, v in cri.timings.items())
                print(f"\nCRI ({driver.name}) seconds: {summary}", file=sys.stderr)


# --- the test's pod ---------------------------------------------------------------------------------------


POD_MEMORY_LIMIT = 512 << 20


def kubelet_creates_pod_cgroup(driver: Driver, parent: str) -> Path | None:
    """What the kubelet's cgroupfs driver does before RunPodSandbox: the pod's cgroup in every hierarchy, with a
    pod-wide memory limit; returns that limit's file. (With the systemd driver the slice is systemd's to make.)"""
    if driver.systemd:
        return None
    if cgroup2_only():  # a v2 node's kubelet (or systemd) has the memory controller enabled below the root
        root_control = Path("/sys/fs/cgroup/cgroup.subtree_control")
        if "memory" not in root_control.read_text().split():
            root_control.write_text("+memory")
    for mount in cgroup_mounts():
        (mount / parent.lstrip("/")).mkdir(exist_ok=True)
    limit = cgroup_file(parent, ("memory", "memory.limit_in_bytes"), "memory.max")
    limit.write_text(str(POD_MEMORY_LIMIT))
    return limit


def pod_config(cri: Cri, name: str) -> Any:
    pb = cri.pb
    parent = cri.driver.pod_parent(name)
    cri.cgroup_parents.append(cri.driver.parent_dir(parent))
    log_dir = cri.work / "pods" / name
    log_dir.mkdir(parents=True)
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="default"),
        hostname=name,
        log_directory=str(log_dir),
        labels={"app": name},
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=parent,
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)
            ),
        ),
    )


def container_config(cri: Cri, name: str, command: list[str], *, share_pid: bool, memory: int = 0) -> Any:
    pb = cri.pb
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=APP_IMAGE),
        command=command,
        envs=[pb.KeyValue(key="GREETING", value="hello")],
        log_path=f"{name}.log",
        linux=pb.LinuxContainerConfig(
            resources=pb.LinuxContainerResources(memory_limit_in_bytes=memory, cpu_shares=512),
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(
                    network=pb.POD, pid=pb.POD if share_pid else pb.CONTAINER, ipc=pb.POD
                )
            ),
        ),
    )


def status_info(response: Any) -> dict[str, Any]:
    return json.loads(response.info["info"])


def exec_sync(cri: Cri, container_id: str, *cmd: str) -> Any:
    return cri.call("ExecSync", container_id=container_id, cmd=list(cmd), timeout=30)


def test_runtime_answers_version_and_status(cri: Cri) -> None:
    version = cri.call("Version", version="v1")
    assert version.runtime_name == "containerd"
    assert version.runtime_api_version == "v1"
    conditions = {c.type: c.status for c in cri.call("Status").status.conditions}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}


def test_pod_lifecycle(cri: Cri) -> None:
    pb = cri.pb
    engine_runtime = cri.config["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"][cri.handler]
    assert engine_runtime["runtime_type"] == "io.containerd.runc.v2"
    assert engine_runtime["options"]["BinaryName"] == ENGINE

    # RunPodSandbox with the RuntimeClass's handler: the pause container, run by engine.
    sandbox_config = pod_config(cri, f"pod-{cri.token}")
    parent = sandbox_config.linux.cgroup_parent
    pod_limit = kubelet_creates_pod_cgroup(cri.driver, parent)
    sandbox_id = cri.call("RunPodSandbox", config=sandbox_config, runtime_handler=cri.handler).pod_sandbox_id
    cri.sandboxes.append(sandbox_id)
    status = cri.call("PodSandboxStatus", pod_sandbox_id=sandbox_id, verbose=True)
    assert status.status.state == pb.SANDBOX_READY
    assert status.status.runtime_handler == cri.handler
    assert status.status.network.ip.startswith(POD_SUBNET_PREFIX)
    info = status_info(status)
    pause_pid = info["pid"]
    assert info["runtimeOptions"]["binary_name"] == ENGINE
    assert Path(f"/proc/{pause_pid}/cmdline").read_bytes() == b"/pause\0"

    # engine ran it (not runc): engine's state for the sandbox under the Root the shim passes, with engine's
    # own copy of config.json (runc keeps none), and `engine state` agrees with containerd about the pid.
    engine_state = json.loads(cri.engine("state", sandbox_id).stdout)
    assert engine_state["status"] == "running"
    assert engine_state["pid"] == pause_pid
    assert (cri.engine_root / K8S_NAMESPACE / sandbox_id / "config.json").is_file()
    pause_cgroups = set(proc_cgroups(pause_pid).values())
    assert pause_cgroups == {cri.driver.cgroup_of(parent, sandbox_id)}, "the pause is not in the pod's cgroup parent"

    # CreateContainer + StartContainer: the app joins the pod's network, IPC and UTS namespaces by path.
    app_command = ["sh", "-c", 'trap "exit 7" TERM; echo "$GREETING from $(hostname)"; sleep 1000 & wait $!']
    app_config = container_config(cri, "app", app_command, share_pid=False, memory=64 << 20)
    app_id = cri.call(
        "CreateContainer", pod_sandbox_id=sandbox_id, config=app_config, sandbox_config=sandbox_config
    ).container_id
    assert cri.call("ContainerStatus", container_id=app_id).status.state == pb.CONTAINER_CREATED
    cri.call("StartContainer", container_id=app_id)
    app_status = cri.call("ContainerStatus", container_id=app_id, verbose=True)
    assert app_status.status.state == pb.CONTAINER_RUNNING
    app_pid = status_info(app_status)["pid"]
    assert json.loads(cri.engine("state", app_id).stdout)["pid"] == app_pid

    for kind in ("net", "ipc", "uts"):
        assert namespace(app_pid, kind) == namespace(pause_pid, kind), f"{kind} namespace not shared"
        seen = exec_sync(cri, app_id, "readlink", f"/proc/self/ns/{kind}")
        assert seen.stdout.decode().strip() == namespace(pause_pid, kind), f"the app sees another {kind} namespace"
    for kind in ("pid", "mnt"):
        assert namespace(app_pid, kind) != namespace(pause_pid, kind), f"{kind} namespace shared, not asked for"
    assert exec_sync(cri, app_id, "hostname").stdout.decode() == f"{sandbox_config.hostname}\n"
    seen_addresses = exec_sync(cri, app_id, "ip", "-o", "-4", "addr", "show", "eth0").stdout.decode()
    assert f" {status.status.network.ip}/" in seen_addresses

    # The pod's cgroup parent, and the resources asked for.
    app_cgroup = cri.driver.cgroup_of(parent, app_id)
    assert set(proc_cgroups(app_pid).values()) == {app_cgroup}
    memory_limit = cgroup_file(app_cgroup, ("memory", "memory.limit_in_bytes"), "memory.max")
    assert memory_limit.read_text().strip() == str(64 << 20)

    # The app's stdout reaches the CRI log (what `kubectl logs` reads) through the shim's pipes.
    log = Path(sandbox_config.log_directory) / "app.log"
    wait_for("the app's log line", lambda: log.exists() and f"hello from {sandbox_config.hostname}" in log.read_text())
    assert " stdout F hello from " in log.read_text()

    # ExecSync: output and exit code (engine exec under the shim).
    result = exec_sync(cri, app_id, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.stdout, result.stderr, result.exit_code) == (b"out\n", b"err\n", 3)

    # UpdateContainerResources: the cgroup files change (engine update), and the container sees it.
    cri.call(
        "UpdateContainerResources",
        container_id=app_id,
        linux=pb.LinuxContainerResources(memory_limit_in_bytes=128 << 20, cpu_period=100000, cpu_quota=50000),
    )
    assert memory_limit.read_text().strip() == str(128 << 20)
    if cgroup2_only():
        assert cgroup_file(app_cgroup, ("", ""), "cpu.max").read_text().split() == ["50000", "100000"]
    else:
        assert cgroup_file(app_cgroup, ("cpu", "cpu.cfs_quota_us"), "").read_text().strip() == "50000"
        seen = exec_sync(cri, app_id, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert seen.stdout.decode().strip() == str(128 << 20)

    # A second container sharing the pod's pid namespace (shareProcessNamespace): it sees the pause as pid 1.
    sidecar_config = container_config(cri, "sidecar", ["sleep", "1000"], share_pid=True)
    sidecar_id = cri.call(
        "CreateContainer", pod_sandbox_id=sandbox_id, config=sidecar_config, sandbox_config=sandbox_config
    ).container_id
    cri.call("StartContainer", container_id=sidecar_id)
    sidecar_pid = status_info(cri.call("ContainerStatus", container_id=sidecar_id, verbose=True))["pid"]
    assert namespace(sidecar_pid, "pid") == namespace(pause_pid, "pid")
    assert exec_sync(cri, sidecar_id, "cat", "/proc/1/cmdline").stdout == b"/pause\0"

    # StopContainer: SIGTERM reaches the app's init (its trap exits 7; SIGKILL after the grace period: 137).
    cri.call("StopContainer", container_id=app_id, timeout=30)
    app_status = cri.call("ContainerStatus", container_id=app_id).status
    assert app_status.state == pb.CONTAINER_EXITED
    assert app_status.exit_code == 7
    assert not alive(app_pid)

    # RemoveContainer: engine's state, the container's cgroup and its rootfs mount are gone.
    cri.call("RemoveContainer", container_id=app_id)
    assert app_id not in cri.engine_state_dirs()
    assert not [m for m in cgroup_mounts() if (m / app_cgroup.lstrip("/")).exists()]
    assert not mounts_mentioning(app_id)

    # StopContainer without a grace period: SIGKILL at once (what a forced pod deletion does).
    cri.call("StopContainer", container_id=sidecar_id, timeout=0)
    sidecar_status = cri.call("ContainerStatus", container_id=sidecar_id).status
    assert (sidecar_status.state, sidecar_status.exit_code) == (pb.CONTAINER_EXITED, 128 + 9)
    assert not alive(sidecar_pid)

    # StopPodSandbox stops a container still running (kill, then delete under the shim) and the pause;
    # RemovePodSandbox removes the containers left and the sandbox.
    lingerer_config = container_config(cri, "lingerer", ["sleep", "1000"], share_pid=False)
    lingerer_id = cri.call(
        "CreateContainer", pod_sandbox_id=sandbox_id, config=lingerer_config, sandbox_config=sandbox_config
    ).container_id
    cri.call("StartContainer", container_id=lingerer_id)
    lingerer_pid = status_info(cri.call("ContainerStatus", container_id=lingerer_id, verbose=True))["pid"]
    cri.call("StopPodSandbox", pod_sandbox_id=sandbox_id)
    assert cri.call("PodSandboxStatus", pod_sandbox_id=sandbox_id).status.state == pb.SANDBOX_NOTREADY
    assert cri.call("ContainerStatus", container_id=lingerer_id).status.state == pb.CONTAINER_EXITED
    assert not alive(pause_pid)
    assert not alive(lingerer_pid)
    cri.call("RemovePodSandbox", pod_sandbox_id=sandbox_id)
    cri.sandboxes.remove(sandbox_id)

    ids = (sandbox_id, app_id, sidecar_id, lingerer_id)
    # containerd had nothing to complain about in engine's answers (a kill or delete it could not make sense
    # of is logged, and retried, rather than failed).
    complaints = [line for line in (cri.work / "containerd.log").read_text().splitlines() if "level=error" in line]
    assert not [line for line in complaints if any(i in line for i in ids)], complaints

    # Nothing left: no engine state dir, cgroup, process (shim, engine's exit monitor) or mount.
    assert cri.engine_state_dirs() == []
    assert cri.engine("list", "-q").stdout == ""
    for cgroup in (cri.driver.cgroup_of(parent, i) for i in ids):
        assert not [m for m in cgroup_mounts() if (m / cgroup.lstrip("/")).exists()], f"{cgroup} left behind"
    assert not mounts_mentioning(*ids)
    wait_for(
        "the pod's shim and engine's monitor to exit", lambda: not processes_mentioning(*ids, str(cri.engine_root))
    )
    assert not subprocess.run(["ip", "-o", "link", "show", "master", cri.bridge], capture_output=True).stdout
    # The pod's cgroup parent is the kubelet's: engine left it (and its limit) alone, and it is empty now.
    pod_cgroup = cri.driver.parent_dir(parent)
    if pod_limit is not None:
        assert pod_limit.read_text().strip() == str(POD_MEMORY_LIMIT)
    assert child_cgroups(pod_cgroup) == []
    remove_pod_cgroup(cri.driver, pod_cgroup)
    assert not [m for m in cgroup_mounts() if (m / pod_cgroup.lstrip("/")).exists()]


def test_failed_sandbox_reports_engines_error_and_leaves_nothing(cri: Cri) -> None:
    """A pod whose sandbox engine cannot create: the kubelet gets engine's one-line error (containerd reads it
    from the --log file: a sandbox runtime's stderr is /dev/null opened read-only), and nothing is left."""
    sandbox_config = pod_config(cri, f"bad-{cri.token}")
    sandbox_config.linux.sysctls["net.ipv4.engine_test_no_such_key"] = "1"
    state_dirs_before = cri.engine_state_dirs()
    task_mounts_before = mounts_mentioning(f"{cri.work}/state/io.containerd.runtime.v2.task")
    with pytest.raises(grpc.RpcError) as failure:
        cri.call("RunPodSandbox", config=sandbox_config, runtime_handler=cri.handler)
    details = failure.value.details()
    assert "linux.sysctl.net.ipv4.engine_test_no_such_key: cannot write '1'" in details, details
    assert cri.engine_state_dirs() == state_dirs_before
    parent = cri.driver.parent_dir(sandbox_config.linux.cgroup_parent)
    assert child_cgroups(parent) == []
    assert mounts_mentioning(f"{cri.work}/state/io.containerd.runtime.v2.task") == task_mounts_before
    wait_for(
        "the failed pod's shim and engine's monitor to exit",
        lambda: not processes_mentioning(f"-address {cri.socket}", str(cri.engine_root)),
    )
