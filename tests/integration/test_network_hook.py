"""hooks.network for real, as root, run through hooks.runner the way the runtime runs a createRuntime hook.

Only namespaces this test makes are touched: the "runtime" side is a netns the test adds (the hook runs in it
through `ip netns exec`), the "container" is a sleeping process in a fresh network namespace (`unshare -n`).
The only traffic is one ICMP echo across the veth between those two. Cleanup always runs: the container
process is killed, and deleting the runtime-side netns takes the veth pair with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hooks.network import default_ifname
from hooks.runner import HookError, run_hook

REPO = Path(__file__).resolve().parents[2]
IP, UNSHARE, NSENTER = (shutil.which(tool) for tool in ("ip", "unshare", "nsenter"))

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates network namespaces and veth pairs"),
    pytest.mark.skipif(not (IP and UNSHARE and NSENTER), reason="needs ip (iproute2), unshare and nsenter"),
]

HOST = "10.200.0.1/30"
CONTAINER = "10.200.0.2/30"

# One ICMP echo request from inside the container's namespace, by raw socket (no ping binary needed).
ICMP_ECHO = r"""
import os, socket, struct, sys, time
def checksum(data):
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
target, ident = sys.argv[1], os.getpid() & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
payload = b"engine-network-hook"
header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
sock.sendto(struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, 1) + payload, (target, 0))
deadline = time.monotonic() + 2
while (left := deadline - time.monotonic()) > 0:
    sock.settimeout(left)
    try:
        data, (source, _) = sock.recvfrom(2048)
    except socket.timeout:
        break
    body = data[(data[0] & 0xF) * 4:]
    kind, _, _, reply_id, _ = struct.unpack("!BBHHH", body[:8])
    if kind == 0 and reply_id == ident and source == target:
        print("reply from", source)
        sys.exit(0)
sys.exit(1)
"""


@dataclass
class Namespaces:
    runtime_ns: str  # the `ip netns` name the hook runs in
    pid: int  # the "container" init, alone in its network namespace
    container_id: str

    def state(self) -> bytes:
        return json.dumps(
            {"ociVersion": "1.3.0", "id": self.container_id, "status": "creating", "pid": self.pid, "bundle": "/b"}
        ).encode()

    def hook(self, *args: str) -> dict:
        return {
            "path": IP,
            "args": ["ip", "netns", "exec", self.runtime_ns, sys.executable, "-m", "hooks.network", *args],
            "env": [f"PYTHONPATH={REPO}"],
            "timeout": 30,
        }

    def inside(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [NSENTER, "-t", str(self.pid), "-n", *command], capture_output=True, text=True, timeout=10
        )

    def runtime_side(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [IP, "netns", "exec", self.runtime_ns, *command], capture_output=True, text=True, timeout=10
        )


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    name = f"enghook-{uuid.uuid4().hex[:8]}"
    subprocess.run([IP, "netns", "add", name], check=True)
    container = None
    try:
        container = subprocess.Popen([UNSHARE, "-n", "sleep", "120"])
        own = os.stat("/proc/self/ns/net").st_ino
        deadline = time.monotonic() + 5
        while os.stat(f"/proc/{container.pid}/ns/net").st_ino == own:  # until unshare has exec'd sleep
            assert time.monotonic() < deadline, "unshare -n did not start"
            time.sleep(0.01)
        yield Namespaces(name, container.pid, f"net-{uuid.uuid4().hex[:8]}")
    finally:
        if container is not None:
            container.kill()
            container.wait()
        subprocess.run([IP, "netns", "del", name], check=False)


def test_setup_addresses_routes_and_ping_then_teardown(namespaces: Namespaces) -> None:
    ns = namespaces
    host_if = default_ifname(ns.container_id)
    run_hook(
        ns.hook("--host-addr", HOST, "--container-addr", CONTAINER, "--default-route", "--mtu", "1400"),
        ns.state(),
        stage="createRuntime",
    )

    runtime_addr = ns.runtime_side(IP, "-o", "addr", "show", "dev", host_if)
    assert f"inet {HOST}" in runtime_addr.stdout, runtime_addr
    links = ns.inside(IP, "-o", "link", "show")
    assert "lo: <LOOPBACK,UP" in links.stdout, links
    eth0 = ns.inside(IP, "-o", "addr", "show", "dev", "eth0")
    assert f"inet {CONTAINER}" in eth0.stdout, eth0
    eth0_link = ns.inside(IP, "-o", "link", "show", "dev", "eth0").stdout
    assert ",UP" in eth0_link
    assert " mtu 1400 " in eth0_link
    assert " mtu 1400 " in ns.runtime_side(IP, "-o", "link", "show", "dev", host_if).stdout
    route = ns.inside(IP, "route", "show", "default")
    assert route.stdout.startswith("default via 10.200.0.1 dev eth0"), route

    ping = ns.inside(sys.executable, "-c", ICMP_ECHO, "10.200.0.1")
    assert ping.returncode == 0, f"no echo reply across the veth: {ping}"

    run_hook(ns.hook("--teardown"), ns.state(), stage="poststop")
    assert ns.runtime_side(IP, "link", "show", "dev", host_if).returncode != 0  # the host end is gone
    assert ns.inside(IP, "link", "show", "dev", "eth0").returncode != 0  # and its peer with it
    run_hook(ns.hook("--teardown"), ns.state(), stage="poststop")  # nothing left to delete: still fine


def test_a_failed_setup_leaves_no_veth_behind(namespaces: Namespaces) -> None:
    ns = namespaces
    # The gateway is not on the container's subnet: adding the default route fails after the pair exists.
    with pytest.raises(HookError) as info:
        run_hook(
            ns.hook("--host-addr", HOST, "--container-addr", "10.201.0.2/30", "--default-route", "--name", "vetest0"),
            ns.state(),
            stage="createRuntime",
        )
    message = str(info.value)
    assert message.startswith(f"createRuntime hook {IP}: exited with status 1; output: network hook: ")
    assert ns.runtime_side(IP, "link", "show", "dev", "vetest0").returncode != 0
    assert ns.inside(IP, "link", "show", "dev", "eth0").returncode != 0


def test_without_a_pid_or_an_id_the_hook_fails_clearly(namespaces: Namespaces) -> None:
    state = json.dumps({"id": namespaces.container_id, "status": "creating", "pid": 0}).encode()
    with pytest.raises(HookError, match="the state has no container pid"):
        run_hook(namespaces.hook("--host-addr", HOST, "--container-addr", CONTAINER), state, stage="createRuntime")
    with pytest.raises(HookError, match="the state has no container id to name the veth after; pass --name"):
        run_hook(namespaces.hook("--teardown"), b'{"status": "stopped"}', stage="poststop")
