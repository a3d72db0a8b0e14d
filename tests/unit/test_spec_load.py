"""engine.spec.load and engine.spec.document: the schema test documents, one-line error messages, ociVersion
acceptance. Every message is checked from both loaders (the pydantic models and the compiled validator the
runtime uses): they must say the same thing."""

import copy
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from engine.errors import ConfigError
from engine.spec import document
from engine.spec.load import (
    load_config,
    load_process,
    load_resources,
    parse_config,
    parse_process,
    validate_config,
)

SPEC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "runtime-spec"
NO_SPEC = f"runtime-spec checkout not found at {SPEC_DIR} (expected as the repo's sibling ../shared)"


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    """The runtime-spec checkout (markdown + schema/), which lives next to the repository."""
    if not (SPEC_DIR / "schema").is_dir():
        pytest.skip(NO_SPEC)
    return SPEC_DIR


def test_files(kind: str) -> list[Any]:
    """Parameters for every file in schema/test/config/<kind>, or one skipped parameter if absent."""
    folder = SPEC_DIR / "schema/test/config" / kind
    if not folder.is_dir():
        return [pytest.param("missing", marks=pytest.mark.skip(reason=NO_SPEC))]
    return sorted(p.name for p in folder.glob("*.json"))


test_files.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def message(data: bytes | dict[str, Any], **kwargs: Any) -> str:
    """The error message for a config.json, the same from the models and from the runtime's loader."""
    if isinstance(data, dict):
        data = orjson.dumps(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data, **kwargs)
    with pytest.raises(ConfigError) as runtime:
        document.parse_config(data, **kwargs)
    assert str(runtime.value) == str(info.value)
    return str(info.value)


# --------------------------------------------------------------------------------------------------
# schema/test/config


@pytest.mark.parametrize("name", test_files("good"))
def test_good_documents_load(spec_dir: Path, name: str) -> None:
    path = spec_dir / "schema/test/config/good" / name
    spec = load_config(str(path), check_oci_version=False)
    assert spec.model_dump(by_alias=True, exclude_none=True) == orjson.loads(path.read_bytes())
    assert document.load_config(str(path), check_oci_version=False) == orjson.loads(path.read_bytes())
    if spec.oci_version.startswith("1."):
        # Everything in the supported range also loads the way `create` loads it.
        assert load_config(str(path)) == spec


def test_pre_1_0_spec_example_is_refused_for_running(spec_dir: Path) -> None:
    # spec-example.json is schema-valid but says "0.5.0-dev": fine for the model, not for this runtime.
    path = spec_dir / "schema/test/config/good/spec-example.json"
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value) == (
        'spec-example.json: ociVersion: version "0.5.0-dev" is not supported: '
        "this runtime implements 1.0.0 through 1.3.x"
    )


BAD_MESSAGES = {
    "invalid-json.json": (
        "invalid-json.json: invalid JSON at line 1 column 2: expecting property name enclosed in double quotes"
    ),
    "linux-hugepage.json": (
        'linux-hugepage.json: linux.resources.hugepageLimits[0].pageSize: must match ^[1-9][0-9]*[KMG]B$, got "64kB"'
    ),
    "linux-netdevice.json": "linux-netdevice.json: linux.netDevices.eth0.name: expected a string, got 23",
    "linux-rdma.json": (
        'linux-rdma.json: linux.resources.rdma.mlx5_1.hcaHandles: expected an integer, got "not a uint32"'
    ),
}

# Bad only in a non-Linux platform object, which this engine keeps as an opaque dict (models.py).
LOOSE_PLATFORM_BAD = {"freebsd-vnet-disable.json"}


@pytest.mark.parametrize("name", test_files("bad"))
def test_bad_documents(spec_dir: Path, name: str) -> None:
    path = spec_dir / "schema/test/config/bad" / name
    if name in LOOSE_PLATFORM_BAD:
        spec = load_config(str(path))
        assert spec.linux is None and spec.freebsd is not None
        return
    assert name in BAD_MESSAGES, f"new bad test document {name}: add its expected message"
    with pytest.raises(ConfigError) as info:
        load_config(str(path), check_oci_version=False)
    assert str(info.value) == BAD_MESSAGES[name]
    with pytest.raises(ConfigError) as info:
        document.load_config(str(path), check_oci_version=False)
    assert str(info.value) == BAD_MESSAGES[name]


# --------------------------------------------------------------------------------------------------
# Message format

V = {"ociVersion": "1.3.0"}


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            {**V, "linux": {"resources": {"memory": {"limit": "1g"}}}},
            'config.json: linux.resources.memory.limit: expected an integer, got "1g"',
        ),
        ({**V, "process": {"cwd": "/", "args": []}}, "config.json: process.args: must not be empty"),
        ({**V, "process": {"args": ["sh"]}}, "config.json: process.cwd: is required"),
        ({}, "config.json: ociVersion: is required"),
        ([], "config.json: expected an object, got []"),
        ({**V, "root": {}}, "config.json: root.path: is required"),
        ({**V, "root": "rootfs"}, 'config.json: root: expected an object, got "rootfs"'),
        ({**V, "mounts": {}}, "config.json: mounts: expected an array, got {}"),
        ({**V, "mounts": [{"destination": 1}]}, "config.json: mounts[0].destination: expected a string, got 1"),
        ({**V, "root": {"path": "r", "readonly": 1}}, "config.json: root.readonly: expected a boolean, got 1"),
        (
            {**V, "linux": {"namespaces": [{"type": "pid"}, {"type": "net"}]}},
            'config.json: linux.namespaces[1].type: must be one of "pid", "network", "mount", "ipc", "uts",'
            ' "user", "cgroup" or "time", got "net"',
        ),
        (
            {**V, "linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}]}},
            'config.json: linux.namespaces[1].type: duplicate namespace type "pid"',
        ),
        (
            {**V, "linux": {"sysctl": {"net.ipv4.ip_forward": 1}}},
            'config.json: linux.sysctl["net.ipv4.ip_forward"]: expected a string, got 1',
        ),
        (
            {**V, "linux": {"uidMappings": [{"containerID": 0, "hostID": 4294967296, "size": 1}]}},
            "config.json: linux.uidMappings[0].hostID: must be at most 4294967295, got 4294967296",
        ),
        (
            {**V, "process": {"cwd": "/", "oomScoreAdj": -1001}},
            "config.json: process.oomScoreAdj: must be at least -1000, got -1001",
        ),
        (
            {**V, "linux": {"devices": [{"type": "b", "path": "/dev/sda", "minor": 0}]}},
            'config.json: linux.devices[0].major: is required for device type "b"',
        ),
        (
            {**V, "mounts": [{"destination": "/x", "gidMappings": []}]},
            "config.json: mounts[0].uidMappings: is required when gidMappings is set",
        ),
        (
            {**V, "annotations": {"": "x"}},
            "config.json: annotations: keys must not be empty strings",
        ),
        (
            # A long value is cut short, so one bad entry cannot flood the terminal.
            {**V, "process": {"cwd": "/", "env": [["A=" + "x" * 100]]}},
            'config.json: process.env[0]: expected a string, got ["A=' + "x" * 53 + "...",
        ),
        (
            {"ociVersion": "2.0.0"},
            'config.json: ociVersion: version "2.0.0" is not supported: this runtime implements 1.0.0 through 1.3.x',
        ),
        ({"ociVersion": 1}, "config.json: ociVersion: expected a string, got 1"),
        (
            {**V, "hostname": "a\nb", "domainname": 7},
            "config.json: domainname: expected a string, got 7",
        ),
    ],
)
def test_error_messages(doc: Any, expected: str) -> None:
    assert message(orjson.dumps(doc)) == expected


def test_several_errors_are_counted() -> None:
    doc = {"ociVersion": "1.3.0", "root": {"path": 1, "readonly": "no"}, "hostname": 2}
    assert message(doc) == "config.json: root.path: expected a string, got 1 (+2 more)"


def test_huge_integer_is_reported_as_out_of_range() -> None:
    # Integers beyond 64 bits stay integers (JSON has no limit), so the message gives the bound and the number.
    data = b'{"ociVersion": "1.3.0", "linux": {"resources": {"pids": {"limit": 99999999999999999999}}}}'
    assert message(data) == (
        "config.json: linux.resources.pids.limit: must be at most 9223372036854775807, got 99999999999999999999"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "config.json: invalid JSON at line 1 column 1: expecting a value"),
        (
            b'{\n  "ociVersion": "1.3.0",\n  "root": {"path": "r",}\n}',
            "config.json: invalid JSON at line 3 column 24: expecting property name enclosed in double quotes",
        ),
        (
            b'{"ociVersion": "1.3.0"} x',
            "config.json: invalid JSON at line 1 column 25: unexpected content after the document",
        ),
        (b'{"ociVersion": NaN}', "config.json: invalid JSON: NaN is not valid JSON"),
        (b"[" * 100_000, "config.json: invalid JSON: nested too deeply"),
        (b'{"ociVersion": "\\ud800"}', "config.json: invalid JSON: a string holds a lone UTF-16 surrogate"),
        (b'{"ociVersion": "\xff"}', "config.json: invalid JSON: not UTF-8 (byte 16)"),
        (b'{"a": "tab\there"}', "config.json: invalid JSON at line 1 column 11: invalid control character"),
    ],
)
def test_invalid_json(data: bytes, expected: str) -> None:
    assert message(data) == expected


def test_filename_labels_the_message() -> None:
    with pytest.raises(ConfigError, match=r"^my.json: ociVersion: is required$"):
        parse_config(b"{}", "my.json")


# --------------------------------------------------------------------------------------------------
# Files


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "config.json"))
    assert str(info.value) == f"config.json: not found in bundle {tmp_path}"


def test_load_config_accepts_bundle_directory(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes(b'{"ociVersion": "1.2.0", "root": {"path": "rootfs"}}')
    assert load_config(str(tmp_path)).root is not None
    with pytest.raises(ConfigError, match="not found in bundle"):
        load_config(str(tmp_path / "sub"))


def test_load_config_unreadable(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    # Any read failure other than "no such file" is reported with the OS reason.
    with pytest.raises(ConfigError, match=r"^config.json: cannot read: Not a directory$"):
        load_config(str(tmp_path / "file" / "config.json"))


def test_load_process(tmp_path: Path) -> None:
    path = tmp_path / "process.json"
    path.write_bytes(b'{"cwd": "/", "args": ["ls", "-l"], "env": ["A=1"], "user": {"uid": 1, "gid": 2}}')
    process = load_process(str(path))
    assert process.args == ["ls", "-l"] and process.user is not None and process.user.gid == 2
    path.write_bytes(b'{"cwd": "/", "args": []}')
    with pytest.raises(ConfigError) as info:
        load_process(str(path))
    assert str(info.value) == f"{path}: args: must not be empty"
    with pytest.raises(ConfigError) as info:
        load_process(str(tmp_path / "nope.json"))
    assert str(info.value) == f"{tmp_path / 'nope.json'}: no such file"


def test_parse_process_paths_are_relative_to_the_process_object() -> None:
    with pytest.raises(ConfigError) as info:
        parse_process(b'{"cwd": "/", "capabilities": {"bounding": "CAP_KILL"}}')
    assert str(info.value) == 'process.json: capabilities.bounding: expected an array, got "CAP_KILL"'


def test_load_resources(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(b'{"memory": {"limit": 1048576}, "pids": {"limit": 10}}')
    res = load_resources(str(path))
    assert res.memory is not None and res.memory.limit == 1048576
    assert res.pids is not None and res.pids.limit == 10
    assert document.load_resources(str(path)) == {"memory": {"limit": 1048576}, "pids": {"limit": 10}}
    path.write_bytes(b'{"memory": {"limit": "1g"}}')
    with pytest.raises(ConfigError, match=r'memory.limit: expected an integer, got "1g"$'):
        document.load_resources(str(path))


def test_runtime_loader_gives_the_json_objects(tmp_path: Path) -> None:
    # What create, exec --process and update --resources use: dicts, as model_dump(by_alias, exclude_none) gives.
    (tmp_path / "config.json").write_bytes(b'{"ociVersion": "1.2.0", "root": {"path": "rootfs"}, "hostname": null}')
    assert document.load_config(str(tmp_path)) == {"ociVersion": "1.2.0", "root": {"path": "rootfs"}}
    path = tmp_path / "process.json"
    path.write_bytes(b'{"cwd": "/", "args": ["ls"], "x-extra": 1}')
    assert document.load_process(str(path)) == {"cwd": "/", "args": ["ls"], "x-extra": 1}
    path.write_bytes(b'{"cwd": "/", "args": []}')
    with pytest.raises(ConfigError, match=r": args: must not be empty$"):
        document.load_process(str(path))
    with pytest.raises(ConfigError, match=r"no such file$"):
        document.load_process(str(tmp_path / "nope.json"))


def test_validate_config_takes_decoded_json() -> None:
    assert validate_config({"ociVersion": "1.3.0"}).oci_version == "1.3.0"
    with pytest.raises(ConfigError, match=r"^config.json: ociVersion: is required$"):
        validate_config({})


def test_snake_case_keys_in_json_are_unknown_not_synonyms() -> None:
    spec = parse_config(b'{"ociVersion": "1.3.0", "linux": {"cgroups_path": "/x"}}')
    assert spec.linux is not None and spec.linux.cgroups_path is None


# --------------------------------------------------------------------------------------------------
# ociVersion

ACCEPTED = ["1.0.0", "1.0.2", "1.0.2-dev", "1.0.0-rc5", "1.1.0-rc.1", "1.2.0", "1.2.1+dev", "1.3.0", "1.3.9"]
REJECTED_RANGE = ["0.9.0", "0.5.0-dev", "1.4.0", "1.4.0-rc.1", "2.0.0", "10.1.0"]
REJECTED_SYNTAX = ["", "1", "1.0", "v1.0.0", "1.0.0.0", "01.0.0", "1.0.0-", "1.0.0 ", "latest"]


@pytest.mark.parametrize("version", ACCEPTED)
def test_accepted_versions(version: str) -> None:
    assert parse_config(orjson.dumps({"ociVersion": version})).oci_version == version


@pytest.mark.parametrize("version", REJECTED_RANGE)
def test_versions_outside_the_range(version: str) -> None:
    assert message({"ociVersion": version}) == (
        f'config.json: ociVersion: version "{version}" is not supported: this runtime implements 1.0.0 through 1.3.x'
    )
    # Schema-conformance mode waives only the range.
    assert parse_config(orjson.dumps({"ociVersion": version}), check_oci_version=False).oci_version == version


@pytest.mark.parametrize("version", REJECTED_SYNTAX)
def test_versions_that_are_not_semver(version: str) -> None:
    expected = (
        'config.json: ociVersion: must be a SemVer 2.0.0 version such as "1.3.0", got ' + orjson.dumps(version).decode()
    )
    assert message({"ociVersion": version}) == expected
    assert message({"ociVersion": version}, check_oci_version=False) == expected


prerelease = st.from_regex(r"[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*", fullmatch=True).filter(
    lambda s: all(not (p.isdigit() and len(p) > 1 and p[0] == "0") for p in s.split("."))
)


@given(
    major=st.integers(0, 12),
    minor=st.integers(0, 12),
    patch=st.integers(0, 99),
    pre=st.none() | prerelease,
    build=st.none() | st.from_regex(r"[0-9A-Za-z-]+", fullmatch=True),
)
def test_version_rule(major: int, minor: int, patch: int, pre: str | None, build: str | None) -> None:
    version = f"{major}.{minor}.{patch}" + (f"-{pre}" if pre else "") + (f"+{build}" if build else "")
    supported = major == 1 and minor <= 3
    if supported:
        assert parse_config(orjson.dumps({"ociVersion": version})).oci_version == version
    else:
        assert "is not supported" in message({"ociVersion": version})


# --------------------------------------------------------------------------------------------------
# Against the official JSON schema: whatever the schema rejects, the loader rejects too


@pytest.fixture(scope="session")
def config_validator(spec_dir: Path) -> jsonschema.Draft4Validator:
    schema_dir = spec_dir / "schema"
    registry: Registry = Registry().with_resources(
        (p.name, Resource.from_contents(orjson.loads(p.read_bytes()), default_specification=DRAFT4))
        for p in schema_dir.glob("*.json")
    )
    schema = orjson.loads((schema_dir / "config-schema.json").read_bytes())
    return jsonschema.Draft4Validator(schema, registry=registry)


@pytest.fixture(scope="session")
def spec_example(spec_dir: Path) -> dict[str, Any]:
    return orjson.loads((spec_dir / "schema/test/config/good/spec-example.json").read_bytes())


def all_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += all_paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += all_paths(value, (*path, i))
    return found


def replace_at(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


# No null: a null is "absent" to the loader (as to Go runtimes) while the schema rejects it.
json_scalars = (
    st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["pid", "SCMP_ACT_ALLOW", "RLIMIT_CORE", "c", "2MB", "/x", "slave", "rootfs"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["type", "path", "limit", "names", "action", "major", "minor", "allow", "x"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=6,
)

# Rules the loader enforces beyond the JSON schema (each explained in models.py / version.py).
STRICTER = (
    "must not be empty",
    "duplicate ",
    "is required for device type",
    "is required when",
    "must not be set without",
    "keys must not be empty",
    "process.oomScoreAdj",
    "must be a SemVer",
    "must not contain newlines",
    "linux.memoryPolicy.mode: is required",
    "linux.personality.domain: is required",
    "got 0.0",  # draft-04 integers: jsonschema accepts 0.0 as an integer, the loader does not
    ".0 (",
    "must match",  # jsonschema's "pattern" is re.search, so "$" also matches before a final newline
    "resources.devices",  # device cgroup type is enumerated by the prose (a, c, b)
)


def is_lenient_difference(error: jsonschema.ValidationError) -> bool:
    # The loader accepts `"pids": {}` (config-linux.md made pids.limit OPTIONAL; the schema lags).
    return error.validator == "required" and list(error.path)[-2:] == ["resources", "pids"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), value=json_values)
def test_schema_invalid_documents_are_rejected(
    config_validator: jsonschema.Draft4Validator, spec_example: dict[str, Any], data: st.DataObject, value: Any
) -> None:
    path = data.draw(st.sampled_from(all_paths(spec_example)[1:]))
    doc = replace_at(spec_example, path, value)
    schema_errors = [e for e in config_validator.iter_errors(doc) if not is_lenient_difference(e)]
    try:
        parse_config(orjson.dumps(doc), check_oci_version=False)
    except ConfigError as e:
        text = str(e)
        assert "\n" not in text and text.startswith("config.json: ")
        assert "input_value" not in text and "http" not in text and "pydantic" not in text.lower()
        if not schema_errors:
            # The schema accepts it: the rejection must be one of the documented extra rules.
            assert any(s in text for s in STRICTER), text
        event("rejected, schema-invalid" if schema_errors else "rejected by a stricter rule")
        return
    assert not schema_errors, f"loader accepted a schema-invalid document: {schema_errors[0].message}"
    event("accepted, schema-valid")


@settings(max_examples=100, deadline=None)
@given(junk=st.binary(max_size=40))
def test_arbitrary_bytes_give_one_line_errors(junk: bytes) -> None:
    try:
        parse_config(junk)
    except ConfigError as e:
        assert "\n" not in str(e) and str(e).startswith("config.json: ")
    else:
        assume(False)  # an accidentally valid document is not interesting here
