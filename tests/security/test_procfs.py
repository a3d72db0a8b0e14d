"""Writes into /proc that an image or a config can redirect (CVE-2019-16884, CVE-2025-52881) and sysctls that are
not the container's to set (issue #7: a global key changes the host)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.security.conftest import Runtime, one_line_error


def _plant_fake_proc(rootfs: Path) -> None:
    """An image that ships its own /proc tree: plain files where the sysctl and oom_score_adj would be."""
    for rel in ("sys/net/ipv4/ip_forward", "self/oom_score_adj"):
        path = rootfs / "proc" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("0\n")


def _in_netns_of(pid: int, path: str) -> str:
    """Read a /proc/sys file as seen from the network namespace of pid (a sysctl is per namespace)."""
    result = subprocess.run(["nsenter", "-t", str(pid), "-n", "cat", path], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_cve_2025_52881_sysctl_and_oom_score_reach_the_kernel(
    runtime: Runtime, fresh_rootfs: Callable[[], Path]
) -> None:
    """No procfs mounted in the container, and an image with plain files at /proc/sys/... and /proc/self/...: a
    runtime that writes through the container's /proc writes those files and the sysctl and oom_score_adj the
    config asked for silently never happen. Written through a procfs of the runtime's own, they must."""
    runtime.falls("its sysctl write goes through the container's /proc (a plain file here) and is lost")
    rootfs = fresh_rootfs()
    _plant_fake_proc(rootfs)

    def edit(config: dict) -> None:
        config["mounts"] = [m for m in config["mounts"] if m["type"] not in ("proc", "sysfs")]
        config["linux"]["maskedPaths"] = []
        config["linux"]["readonlyPaths"] = []
        config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
        config["process"]["oomScoreAdj"] = 321

    container_id, result = runtime.create(runtime.config(["sleep", "60"], rootfs=rootfs, edit=edit))
    assert result.returncode == 0, result.stderr
    pid = runtime.state(container_id)["pid"]
    assert Path(f"/proc/{pid}/oom_score_adj").read_text().strip() == "321"
    assert _in_netns_of(pid, "/proc/sys/net/ipv4/ip_forward") == "1"


def host_value(key: str) -> str:
    """The host's current value of a sysctl. An attack test that a vulnerable runtime lets through then writes
    what is already there: running these tests against a runtime that falls must not change the host."""
    return Path("/proc/sys", key.replace(".", "/")).read_text().strip()


BAD_KEYS = {
    "kernel.core_pattern": "not namespaced",  # global: the host's core_pattern, a way to run code as host root
    "vm.overcommit_memory": "not namespaced",
    "net./../kernel/domainname": "not a sysctl name",  # a '/' in a name
    "net..ipv4.ip_forward": "not a sysctl name",  # an empty part
}


@pytest.mark.parametrize("key", sorted(BAD_KEYS))
def test_only_namespaced_sysctls(runtime: Runtime, key: str) -> None:
    """linux.sysctl accepts only keys the container's own namespaces scope (runc's list), as dotted names: a
    global key would change the host; a '/' or '..' in a key walks out of where the name says."""
    if key == "net..ipv4.ip_forward":
        runtime.falls("it accepts a malformed key starting with net. (here written as /proc/sys/net//ipv4/...)")
    value = host_value(key) if key in ("kernel.core_pattern", "vm.overcommit_memory") else "0"

    def edit(config: dict) -> None:
        config["linux"]["sysctl"] = {key: value}

    _, result = runtime.create(runtime.config(["true"], edit=edit))
    assert result.returncode != 0, f"linux.sysctl {key!r} was accepted"
    if not runtime.is_runc:
        error = one_line_error(result)
        assert f"linux.sysctl.{key}" in error and BAD_KEYS[key] in error, error


@pytest.mark.parametrize(
    ("key", "needs", "wanted"),
    [("net.ipv4.ip_forward", "network", "1"), ("kernel.shmmni", "ipc", "1234"), ("fs.mqueue.msg_max", "ipc", "77")],
)
def test_namespaced_sysctls_need_their_namespace(runtime: Runtime, key: str, needs: str, wanted: str) -> None:
    """A namespaced key is still the host's when the container shares that namespace with the host: refused
    then (asked with the host's own value, so a runtime that falls changes nothing), set with one."""

    def without(config: dict) -> None:
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != needs]
        config["linux"]["sysctl"] = {key: host_value(key)}

    _, result = runtime.create(runtime.config(["true"], edit=without))
    assert result.returncode != 0, f"{key} was accepted without a {needs} namespace"
    if not runtime.is_runc:
        assert needs in one_line_error(result)

    def with_it(config: dict) -> None:
        config["linux"]["sysctl"] = {key: wanted}

    path = "/proc/sys/" + key.replace(".", "/")
    result = runtime.run(runtime.config(["cat", path], edit=with_it))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [wanted]


def test_proc_writes_refuse_what_is_not_procfs(tmp_path: Path) -> None:
    """The procfs handle itself: a file that is not procfs's (a bind of a plain file over a procfs path, in a
    private mount namespace) is refused before anything is written."""
    from engine.linux import syscalls as sc
    from engine.linux.procfs import ProcFS, open_proc_root
    from tests.forked import run_in_child

    plain = tmp_path / "plain"
    plain.write_text("0")

    def attempt() -> dict:
        sc.unshare(sc.CLONE_NEWNS)
        sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        sc.mount(str(plain), "/proc/sys/kernel/domainname", None, sc.MS_BIND)  # only in our namespace
        seen = {}
        host = ProcFS(os.open("/proc", os.O_PATH | os.O_DIRECTORY))  # the visible /proc, bind included
        try:
            host.write("sys/kernel/domainname", b"x")
            seen["visible"] = "written"
        except OSError as err:
            seen["visible"] = err.strerror
        own = ProcFS(open_proc_root())  # a procfs of our own: the bind is not in it
        own.read("sys/kernel/domainname")
        seen["own"] = "readable"
        return seen

    result = run_in_child(attempt)
    assert "ok" in result, result
    assert result["ok"]["visible"] != "written" and plain.read_text() == "0", json.dumps(result)
    assert result["ok"]["own"] == "readable"
