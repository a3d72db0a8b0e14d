"""`engine features` judged from outside engine: by the spec's text and schemas (read from ../shared), by what
runc's `features` says on this machine, and by engine itself doing what each advertised name promises.

features.md and features-linux.md: "The runtime MUST recognize the elements in this array as ..." (namespaces,
capabilities, seccomp actions, operators, architectures, flags); hooks "MUST support"; ociVersionMin and
ociVersionMax "MUST accept this value as the ociVersion property of config.json"; "The Features structure MUST
NOT contain properties that are not defined in this version of the Open Container Initiative Runtime
Specification." Nothing here reads the constants engine builds the document from.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ENGINE, Engine

RUNC = shutil.which("runc") or "/usr/sbin/runc"
# Syscalls `sh -c true` never makes: rules on them must load (be recognized) without changing what the program does.
UNUSED_SYSCALLS = [
    "acct", "swapon", "swapoff", "kexec_load", "reboot", "settimeofday", "init_module", "delete_module",
    "quotactl", "syslog", "vhangup", "iopl", "ioperm", "lookup_dcookie", "nfsservctl", "uselib",
]  # fmt: skip


@pytest.fixture(scope="module")
def features() -> dict[str, Any]:
    result = subprocess.run([ENGINE, "features"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return json.loads(result.stdout)


def schema_properties(schema: dict[str, Any], spec_dir: Path, file: str) -> dict[str, Any]:
    """property -> its sub-properties (or None for a leaf), following $refs through the spec's schema files
    (`file` is the one `schema` comes from, for refs within it)."""
    node = schema
    while "$ref" in node:
        ref_file, _, pointer = node["$ref"].partition("#")
        file = ref_file or file
        node = json.loads((spec_dir / "schema" / file).read_text())
        for part in pointer.strip("/").split("/"):
            node = node[part]
    if "properties" not in node:
        return {}
    return {name: schema_properties(sub, spec_dir, file) or None for name, sub in node["properties"].items()}


def undefined(doc: dict[str, Any], defined: dict[str, Any], where: str = "") -> list[str]:
    found = []
    for key, value in doc.items():
        if key not in defined:
            found.append(f"{where}{key}")
        elif isinstance(value, dict) and defined[key] is not None and key != "annotations":
            found += undefined(value, defined[key], f"{where}{key}.")
    return found


def test_only_properties_the_spec_defines(features: dict[str, Any], spec_dir: Path) -> None:
    """features.md: "The Features structure MUST NOT contain properties that are not defined in this version"."""
    schema = json.loads((spec_dir / "schema" / "features-schema.json").read_text())
    defined = schema_properties(schema, spec_dir, "features-schema.json")
    assert "linux" in defined and "seccomp" in defined["linux"]  # the walk reached features-linux.json
    assert undefined(features, defined) == []


def test_versions_and_hooks_per_the_spec(features: dict[str, Any], spec_dir: Path) -> None:
    # "The value MUST NOT be less than the value of the ociVersionMin property."
    version = [tuple(int(n) for n in re.findall(r"\d+", features[k])[:3]) for k in ("ociVersionMin", "ociVersionMax")]
    assert version[0] <= version[1]
    # The hooks a config can have (config-schema.json), every one of them recognized.
    config_schema = json.loads((spec_dir / "schema" / "config-schema.json").read_text())
    assert set(features["hooks"]) == set(config_schema["properties"]["hooks"]["properties"])


def runc_features() -> dict[str, Any]:
    if not Path(RUNC).exists():
        pytest.skip(f"runc is not installed on this host ({RUNC}): no reference to compare with")
    result = subprocess.run([RUNC, "features"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def config_md_mount_options(spec_dir: Path) -> set[str]:
    text = (spec_dir / "config.md").read_text()
    table = text[text.index('name="configLinuxMountOptions"') : text.index("[^1]:")]
    return {m.group(1).strip() for m in re.finditer(r"^\s*`([^`]+)`\s*\|", table, re.MULTILINE)}


def test_compared_with_runc(features: dict[str, Any], spec_dir: Path) -> None:
    """What runc (the reference, Debian's 1.1.5 here) recognizes, engine recognizes too."""
    runc = runc_features()
    assert features["hooks"] == runc["hooks"]
    ours, theirs = features["linux"], runc["linux"]
    assert set(theirs["namespaces"]) <= set(ours["namespaces"])  # engine adds time, which runc 1.1.5 lacks
    assert ours["capabilities"] == theirs["capabilities"]  # the same names, in the kernel's order
    for key in ("actions", "operators"):
        assert set(ours["seccomp"][key]) == set(theirs["seccomp"][key]), key
    assert set(theirs["seccomp"]["archs"]) <= set(ours["seccomp"]["archs"])
    assert ours["cgroup"]["v1"] and ours["cgroup"]["v2"] and theirs["cgroup"]["v1"] and theirs["cgroup"]["v2"]
    # Mount options: runc's list, minus what config.md's table does not name (acl/noacl are filesystem data).
    assert set(runc["mountOptions"]) & config_md_mount_options(spec_dir) <= set(features["mountOptions"])


def test_the_oci_versions_it_names_are_accepted(engine: Engine, features: dict[str, Any]) -> None:
    for key in ("ociVersionMin", "ociVersionMax"):
        bundle = engine.bundle(["true"], name=key, ociVersion=features[key])
        result = engine("run", "--bundle", str(bundle), engine.new_id())
        assert result.returncode == 0, f"ociVersion {features[key]} ({key}): {result.stderr}"


def test_every_namespace_it_names_is_recognized(engine: Engine, features: dict[str, Any]) -> None:
    mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux = {
        "namespaces": [{"type": t} for t in features["linux"]["namespaces"]],
        "uidMappings": mapping,
        "gidMappings": mapping,
    }
    script = "for ns in /proc/self/ns/*; do readlink $ns; done"
    bundle = engine.bundle(["sh", "-c", script], linux=linux)
    config = json.loads((bundle / "config.json").read_text())
    # cgroupfs cannot be mounted from a user namespace without a cgroup namespace root
    config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"]
    (bundle / "config.json").write_text(json.dumps(config))
    result = engine("run", "--bundle", str(bundle), engine.new_id())
    assert result.returncode == 0, result.stderr
    own = {link.split(":")[0]: link for link in subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True).stdout.split()}  # fmt: skip
    theirs = {link.split(":")[0]: link for link in result.stdout.split()}
    kernel_names = {"mount": "mnt", "network": "net"}
    for name in features["linux"]["namespaces"]:
        ns = kernel_names.get(name, name)
        if ns in own:  # a namespace this kernel has: the container's own, not ours
            assert theirs[ns] != own[ns], name


def test_every_capability_seccomp_name_and_hook_it_names_is_recognized(
    engine: Engine, features: dict[str, Any], tmp_path: Path
) -> None:
    """One container with every advertised capability in every set, a seccomp profile using every advertised
    action, operator, architecture and supported flag (on syscalls the program never makes), and every advertised
    hook: it must run, and its seccomp filter must be in force."""
    seccomp = features["linux"]["seccomp"]
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "agent.sock"))  # SCMP_ACT_NOTIFY needs a listener; none is ever notified
    listener.listen(4)
    unused = iter(UNUSED_SYSCALLS)
    rules = [{"names": [next(unused)], "action": action} for action in seccomp["actions"] if action != "SCMP_ACT_ALLOW"]
    rules += [
        {
            "names": [next(unused)],
            "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 1, "valueTwo": 1, "op": op}],
        }
        for op in seccomp["operators"]
    ]
    native_order, other_order = archs_by_byte_order(seccomp["archs"])
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": str(tmp_path / "agent.sock"),
        "architectures": native_order,
        "flags": seccomp["supportedFlags"],
        "syscalls": rules,
    }
    caps = features["linux"]["capabilities"]
    hooks = {name: [{"path": "/bin/true"}] for name in features["hooks"]}
    bundle = engine.bundle(["sh", "-c", "grep -E '^(Seccomp|CapEff):' /proc/self/status"], hooks=hooks)
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["seccomp"] = profile
    config["process"]["capabilities"] = {key: caps for key in ("bounding", "effective", "permitted", "inheritable")}
    (bundle / "config.json").write_text(json.dumps(config))
    try:
        result = engine("run", "--bundle", str(bundle), engine.new_id())
    finally:
        listener.close()
    assert result.returncode == 0, result.stderr
    status = dict(line.split(":") for line in result.stdout.splitlines())
    assert status["Seccomp"].strip() == "2", result.stdout
    assert "unknown" not in result.stderr.lower(), result.stderr  # warnings may say "not supported here", no more
    # libseccomp keeps one byte order per filter (runc fails the same way): another byte order's architectures
    # are recognized, and refused for that reason, not as unknown names.
    if other_order:
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": other_order[:1]}
        (bundle / "config.json").write_text(json.dumps(config))
        refused = engine("run", "--bundle", str(bundle), engine.new_id())
        assert refused.returncode != 0 and "seccomp_arch_add" in refused.stderr, refused.stderr
        assert "unknown" not in refused.stderr.lower(), refused.stderr


def archs_by_byte_order(archs: list[str]) -> tuple[list[str], list[str]]:
    """The architectures of this machine's byte order (and those the system's libseccomp does not know), and the
    others, by the AUDIT_ARCH token libseccomp itself gives each name (bit 30, __AUDIT_ARCH_LE: little-endian)."""
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2")
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    little = sys.byteorder == "little"
    native, other = [], []
    for arch in archs:
        token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
        (native if token == 0 or bool(token & 0x40000000) == little else other).append(arch)
    return native, other
