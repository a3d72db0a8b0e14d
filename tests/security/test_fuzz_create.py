"""Fuzzing `engine create` for real (issue #7 point 8): hypothesis-made config.json files (wrong types, huge and
negative numbers, deep nesting, unicode and NUL in strings, paths with .. and symlinks) and raw bytes. Whatever the
input, create ends in success or in one line on stderr with a non-zero exit (never a traceback), and leaves
nothing behind: no state directory, mount, process or cgroup.

CI runs a fixed, derandomized sequence (40 configs and 15 raw files; ENGINE_FUZZ_EXAMPLES=N runs N of each);
set ENGINE_FUZZ_EXAMPLES higher and ENGINE_FUZZ_RANDOM=1 to search further. Inputs that once found a bug are kept
as @example seeds.

The fuzzer only creates (and deletes): the container's program never runs. What it may generate is fenced so
that a valid config cannot touch the host: no hooks, no cgroupsPath, no namespace paths (joining the host's
mount namespace would mount on the host), and root.path and bind sources stay inside the test's directory.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.security.conftest import Runtime, leftovers


def fuzz_settings(examples: int) -> settings:
    """A fixed, derandomized run in CI (bounded in time); ENGINE_FUZZ_EXAMPLES / ENGINE_FUZZ_RANDOM for more."""
    return settings(
        max_examples=int(os.environ.get("ENGINE_FUZZ_EXAMPLES", examples)),
        deadline=None,
        derandomize=not os.environ.get("ENGINE_FUZZ_RANDOM"),
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


NASTY_TEXT = [
    "",
    "\x00",
    "a\x00b",
    "..",
    "../../../../..",
    "/proc/self/fd/3",
    "/proc/self/exe",
    "/proc/1/root",
    "/dev/../../etc",
    "☃\u202e\ud7ff",
    "x" * 5000,
    "/",
    "rootfs-link/../rootfs",
    "up",
    "file",
]
text = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=30))
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**32 - 1, 2**63, 2**64, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
)
leaf = st.one_of(st.none(), st.booleans(), numbers, text)
json_value = st.recursive(
    leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=12
)
deeply_nested = st.integers(min_value=50, max_value=3000).map(lambda depth: _nest(depth))


def _nest(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


# Where a mutation may land: every part of config.json that create reads, except what reaches the host itself
# (hooks, cgroupsPath, namespace paths: see the module docstring).
FIELDS = [
    ("ociVersion",),
    ("process",),
    ("process", "args"),
    ("process", "args", 0),
    ("process", "env"),
    ("process", "cwd"),
    ("process", "user"),
    ("process", "user", "uid"),
    ("process", "user", "additionalGids"),
    ("process", "capabilities"),
    ("process", "capabilities", "bounding"),
    ("process", "rlimits"),
    ("process", "terminal"),
    ("process", "consoleSize"),
    ("process", "oomScoreAdj"),
    ("process", "noNewPrivileges"),
    ("process", "apparmorProfile"),
    ("process", "scheduler"),
    ("process", "ioPriority"),
    ("root",),
    ("root", "path"),
    ("root", "readonly"),
    ("hostname",),
    ("domainname",),
    ("annotations",),
    ("mounts",),
    ("mounts", 0),
    ("mounts", 0, "destination"),
    ("mounts", 0, "options"),
    ("mounts", 4, "destination"),
    ("mounts", 4, "type"),
    ("mounts", 4, "source"),
    ("linux",),
    ("linux", "sysctl"),
    ("linux", "maskedPaths"),
    ("linux", "readonlyPaths"),
    ("linux", "devices"),
    ("linux", "resources"),
    ("linux", "resources", "memory"),
    ("linux", "resources", "pids"),
    ("linux", "seccomp"),
    ("linux", "uidMappings"),
    ("linux", "rootfsPropagation"),
    ("linux", "namespaces"),
    ("linux", "personality"),
    ("linux", "timeOffsets"),
]

mutation = st.tuples(st.sampled_from(FIELDS), st.one_of(json_value, deeply_nested))
raw_file = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b"[]", b"null", b'"config"', b"\xff\xfe{}", b"{" * 100000, b'{"a":' * 5000]),
)


def _set(config: Any, path: tuple, value: Any) -> None:
    """config[path] = value, making the containers on the way; a path through a non-container is skipped."""
    node = config
    for key in path[:-1]:
        if isinstance(node, list):
            if not isinstance(key, int) or key >= len(node):
                return
            node = node[key]
        elif isinstance(node, dict):
            node = node.setdefault(key, {})
        else:
            return
    last = path[-1]
    if isinstance(node, dict) or (isinstance(node, list) and isinstance(last, int) and last < len(node)):
        node[last] = value


def _fence(config: Any, bundle: Path, tmp: Path) -> None:
    """Keep a (possibly valid) config away from the host: see the module docstring."""
    if not isinstance(config, dict):
        return
    config.pop("hooks", None)
    linux = config.get("linux")
    if isinstance(linux, dict):
        linux.pop("cgroupsPath", None)
        for ns in linux.get("namespaces") or [] if isinstance(linux.get("namespaces"), list) else []:
            if isinstance(ns, dict):
                ns.pop("path", None)
    root = config.get("root")
    if isinstance(root, dict) and isinstance(root.get("path"), str) and "\x00" not in root["path"]:
        where = os.path.realpath(os.path.join(bundle, root["path"]))
        if not where.startswith(str(tmp) + "/"):
            root["path"] = "rootfs"
    for mount in config.get("mounts") or [] if isinstance(config.get("mounts"), list) else []:
        if isinstance(mount, dict) and isinstance(mount.get("source"), str) and "\x00" not in mount["source"]:
            where = os.path.realpath(os.path.join(bundle, mount["source"]))
            if not where.startswith(str(tmp) + "/") and where not in ("/dev/null", "/proc"):
                mount["source"] = "file"


def _bundle(runtime: Runtime, tmp: Path) -> Path:
    """A bundle with the pieces the nasty paths name: rootfs (a copy), rootfs-link, file, up -> .."""
    bundle = tmp / f"fuzz-{uuid.uuid4().hex[:8]}"
    bundle.mkdir()
    rootfs = tmp / "fuzz-rootfs"
    if not rootfs.exists():
        os.system(f"cp -a {runtime.rootfs} {rootfs}")
    (bundle / "rootfs").symlink_to(rootfs)
    (bundle / "rootfs-link").symlink_to("rootfs")
    (bundle / "file").write_text("a plain file")
    (bundle / "up").symlink_to("..")
    return bundle


def _check(runtime: Runtime, tmp: Path, config: Any) -> None:
    bundle = _bundle(runtime, tmp)
    if isinstance(config, bytes):
        data = config
    else:
        _fence(config, bundle, tmp)
        try:
            data = json.dumps(config).encode()
        except (ValueError, RecursionError):  # too deep for json: the file is a truncated one instead
            data = b'{"ociVersion": "1.0.2-dev", "process": {"args": ['
    (bundle / "config.json").write_bytes(data)
    container_id = runtime.new_id()
    result = runtime("create", "--bundle", str(bundle), container_id, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    if result.returncode == 0:
        deleted = runtime("delete", "--force", container_id)
        assert deleted.returncode == 0, deleted.stderr
    else:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, f"not one line: {result.stderr!r}"
    assert not leftovers(runtime, tmp, container_id), leftovers(runtime, tmp, container_id)


@pytest.fixture
def base_config(engine: Runtime) -> dict[str, Any]:
    config = engine.config(["sleep", "60"])
    config["root"] = {"path": "rootfs", "readonly": True}
    return config


@fuzz_settings(40)
@given(mutations=st.lists(mutation, min_size=1, max_size=3))
@example(mutations=[(("process", "cwd"), "/proc/self/fd/3")])
# The host's own value: should a vulnerable build ever be fuzzed, its write changes nothing.
@example(mutations=[(("linux", "sysctl"), {"kernel.core_pattern": Path("/proc/sys/kernel/core_pattern").read_text()})])
@example(mutations=[(("mounts", 4, "destination"), "/proc/sys")])
@example(mutations=[(("linux", "sysctl"), {"net./../kernel/domainname": "x"})])
def test_fuzz_create_config(engine: Runtime, tmp_path: Path, base_config: dict, mutations: list) -> None:
    config = copy.deepcopy(base_config)
    for path, value in mutations:
        _set(config, path, value)
    _check(engine, tmp_path, config)


@fuzz_settings(15)
@given(data=raw_file)
def test_fuzz_create_raw_bytes(engine: Runtime, tmp_path: Path, data: bytes) -> None:
    _check(engine, tmp_path, data)
