"""engine.spec.models: field names/aliases against the JSON schemas, None-vs-empty, strictness, round trips."""

import copy
import re
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from engine.spec import constants, models
from engine.spec.models import Features, Mount, Process, Spec, SpecModel, State

SPEC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "runtime-spec"
NO_SPEC = f"runtime-spec checkout not found at {SPEC_DIR} (expected as the repo's sibling ../shared)"


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    """The runtime-spec checkout (markdown + schema/), which lives next to the repository."""
    if not (SPEC_DIR / "schema").is_dir():
        pytest.skip(NO_SPEC)
    return SPEC_DIR


@pytest.fixture(scope="session")
def schemas(spec_dir: Path) -> dict[str, Any]:
    """Every schema/*.json file by file name, the way their $refs name each other."""
    return {p.name: orjson.loads(p.read_bytes()) for p in (spec_dir / "schema").glob("*.json")}


@pytest.fixture(scope="session")
def spec_example(spec_dir: Path) -> dict[str, Any]:
    return orjson.loads((spec_dir / "schema/test/config/good/spec-example.json").read_bytes())


def validate(data: dict[str, Any]) -> Spec:
    # The spec's own examples use pre-1.0 versions; the range is tested in test_spec_load.py.
    return Spec.model_validate(data, context={"check_oci_version": False})


def all_models() -> list[type[SpecModel]]:
    return [
        obj
        for obj in vars(models).values()
        if isinstance(obj, type) and issubclass(obj, SpecModel) and obj is not SpecModel
    ]


# --------------------------------------------------------------------------------------------------
# Names and aliases


def snake(alias: str) -> str:
    """The attribute name the brief prescribes for a JSON key (kernelTCP -> kernel_tcp, class -> class_)."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", alias).lower()
    return name + "_" if name in ("class",) else name


@pytest.mark.parametrize("model", all_models(), ids=lambda m: m.__name__)
def test_attribute_is_snake_case_of_alias(model: type[SpecModel]) -> None:
    for name, field in model.model_fields.items():
        assert field.alias is not None, f"{model.__name__}.{name} has no alias"
        assert snake(field.alias) == name, f"{model.__name__}.{name} vs alias {field.alias!r}"


def all_schema_property_names(node: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                names.update(value)
            names |= all_schema_property_names(value)
    elif isinstance(node, list):
        for item in node:
            names |= all_schema_property_names(item)
    return names


def test_every_alias_is_a_schema_property(schemas: dict[str, Any]) -> None:
    known = all_schema_property_names(schemas)
    # Documented in features-linux.md but (not yet) in features-linux.json.
    known |= {"memoryPolicy", "modes", "schemata", "monitoring"}
    for model in all_models():
        for name, field in model.model_fields.items():
            assert field.alias in known, f"{model.__name__}.{name}: alias {field.alias!r} is in no schema"


class SchemaWalker:
    """Resolves the schema files' $refs and pairs each schema object with the model that implements it."""

    def __init__(self, schemas: dict[str, Any]) -> None:
        self.schemas = schemas

    def resolve(self, node: dict[str, Any], file: str) -> tuple[dict[str, Any], str]:
        while "$ref" in node:
            target, _, pointer = node["$ref"].partition("#")
            file = target or file
            node = self.schemas[file]
            for part in pointer.strip("/").split("/"):
                if part:
                    node = node[part]
        return node, file

    def properties(self, node: dict[str, Any], file: str) -> dict[str, tuple[dict[str, Any], str]]:
        node, file = self.resolve(node, file)
        props = {k: (v, file) for k, v in node.get("properties", {}).items()}
        for part in node.get("allOf", []) + node.get("anyOf", []):
            props.update(self.properties(part, file))
        return props

    def check(self, node: dict[str, Any], file: str, model: type[BaseModel], where: str) -> list[str]:
        """Schema properties missing from `model`, recursively."""
        missing: list[str] = []
        fields = {f.alias: f for f in model.model_fields.values()}
        for key, (sub, subfile) in self.properties(node, file).items():
            if key not in fields:
                missing.append(f"{where}.{key}")
                continue
            inner = nested_model(fields[key].annotation)
            if inner is None:
                continue
            sub, subfile = self.resolve(sub, subfile)
            # Descend through arrays (items) and maps (additionalProperties) to the object schema.
            if "items" in sub:
                sub, subfile = self.resolve(sub["items"], subfile)
                if "anyOf" in sub:
                    sub = sub["anyOf"][0]
            elif isinstance(sub.get("additionalProperties"), dict):
                sub = sub["additionalProperties"]
            missing += self.check(sub, subfile, inner, f"{where}.{key}")
        return missing


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside X | None, list[X], dict[str, X], Annotated[X, ...], if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, dict, Annotated):
        for arg in get_args(annotation):
            found = nested_model(arg)
            if found is not None:
                return found
    return None


def test_every_schema_property_is_modelled(schemas: dict[str, Any]) -> None:
    walker = SchemaWalker(schemas)
    missing = walker.check(schemas["config-schema.json"], "config-schema.json", Spec, "config")
    missing += walker.check(schemas["state-schema.json"], "state-schema.json", State, "state")
    missing += walker.check(schemas["features-schema.json"], "features-schema.json", Features, "features")
    assert missing == []


def required_aliases(model: type[BaseModel]) -> set[str]:
    return {f.alias for f in model.model_fields.values() if f.is_required() and f.alias}


def test_required_keys_follow_the_schema(schemas: dict[str, Any]) -> None:
    linux = schemas["defs-linux.json"]["definitions"]
    defs = schemas["defs.json"]["definitions"]
    config = schemas["config-schema.json"]["properties"]
    resources = schemas["config-linux.json"]["linux"]["properties"]["resources"]["properties"]
    pairs: list[tuple[type[BaseModel], dict[str, Any]]] = [
        (Spec, schemas["config-schema.json"]),
        (models.Root, config["root"]),
        (models.Process, config["process"]),
        (models.ConsoleSize, config["process"]["properties"]["consoleSize"]),
        (models.IOPriority, config["process"]["properties"]["ioPriority"]),
        (models.Scheduler, config["process"]["properties"]["scheduler"]),
        (models.Rlimit, config["process"]["properties"]["rlimits"]["items"]),
        (models.Hook, defs["Hook"]),
        (models.IDMapping, defs["IDMapping"]),
        (models.Mount, defs["Mount"]),
        (models.Namespace, linux["NamespaceReference"]),
        (models.Device, linux["Device"]),
        (models.DeviceCgroup, linux["DeviceCgroup"]),
        (models.Syscall, linux["Syscall"]),
        (models.SyscallArg, linux["SyscallArg"]),
        (models.InterfacePriority, linux["NetworkInterfacePriority"]),
        (models.WeightDevice, linux["blockIODevice"]),
        (models.ThrottleDevice, linux["blockIODevice"]),
        (models.HugepageLimit, resources["hugepageLimits"]["items"]),
        (models.Seccomp, schemas["config-linux.json"]["linux"]["properties"]["seccomp"]),
        (State, schemas["state-schema.json"]),
        (Features, schemas["features-schema.json"]),
    ]
    for model, schema in pairs:
        assert required_aliases(model) == set(schema.get("required", [])), model.__name__
    # Deliberate differences, each explained in models.py:
    assert "required" in resources["pids"] and required_aliases(models.Pids) == set()  # prose: OPTIONAL
    assert required_aliases(models.MemoryPolicy) == {"mode"}  # prose: REQUIRED, schema silent
    assert required_aliases(models.Personality) == {"domain"}  # prose: REQUIRED, schema silent


ENUMS = [
    (constants.NamespaceType, "NamespaceType"),
    (constants.RootfsPropagation, "RootfsPropagation"),
    (constants.SeccompAction, "SeccompAction"),
    (constants.SeccompOperator, "SeccompOperators"),
    (constants.SeccompArch, "SeccompArch"),
    (constants.SeccompFlag, "SeccompFlag"),
    (constants.SchedulerPolicy, "SchedulerPolicy"),
    (constants.SchedulerFlag, "SchedulerFlag"),
    (constants.MemoryPolicyMode, "MemoryPolicyMode"),
    (constants.MemoryPolicyFlag, "MemoryPolicyFlag"),
    (constants.PersonalityDomain, "PersonalityDomain"),
]


@pytest.mark.parametrize(("literal", "definition"), ENUMS, ids=[d for _, d in ENUMS])
def test_enumerations_match_defs_linux(literal: Any, definition: str, schemas: dict[str, Any]) -> None:
    assert set(get_args(literal)) == set(schemas["defs-linux.json"]["definitions"][definition]["enum"])


def test_other_enumerations_match_schema(schemas: dict[str, Any]) -> None:
    io_class = schemas["config-schema.json"]["properties"]["process"]["properties"]["ioPriority"]
    assert set(constants.IOPRIORITY_CLASSES) == set(io_class["properties"]["class"]["enum"])
    status = schemas["state-schema.json"]["properties"]["status"]["enum"]
    assert set(constants.CONTAINER_STATUSES) == set(status)
    hooks = schemas["config-schema.json"]["properties"]["hooks"]["properties"]
    assert list(constants.HOOK_NAMES) == list(hooks)
    # engine.hookpoints spells the stages out (no typing at run time): the same names, in the same order.
    from engine import hookpoints

    assert hookpoints.STAGES == constants.HOOK_NAMES
    assert set(constants.DEVICE_TYPES) == set("cbup")  # FileType pattern ^[cbup]$


# --------------------------------------------------------------------------------------------------
# The attribute names other modules use, and absent vs empty


def test_attributes_other_modules_read(spec_example: dict[str, Any]) -> None:
    spec = validate(spec_example)
    assert spec.process is not None and spec.root is not None and spec.linux is not None
    assert spec.process.args == ["sh"]
    assert spec.process.user is not None and spec.process.user.additional_gids == [5, 6]
    assert spec.process.capabilities is not None and spec.process.capabilities.ambient == ["CAP_NET_BIND_SERVICE"]
    assert spec.process.rlimits is not None and spec.process.rlimits[0].type == "RLIMIT_CORE"
    assert spec.root.path == "rootfs" and spec.root.readonly is True
    assert spec.linux.namespaces is not None
    assert (spec.linux.namespaces[0].type, spec.linux.namespaces[0].path) == ("pid", None)
    assert spec.linux.masked_paths is not None and "/proc/kcore" in spec.linux.masked_paths
    assert spec.linux.cgroups_path == "/myRuntime/myContainer"
    assert spec.mounts is not None
    m = spec.mounts[1]
    assert (m.destination, m.type, m.source, m.options) == (
        "/dev",
        "tmpfs",
        "tmpfs",
        ["nosuid", "strictatime", "mode=755", "size=65536k"],
    )
    assert spec.hooks is not None and spec.hooks.create_runtime is not None
    assert spec.hooks.create_runtime[0].path == "/usr/bin/fix-mounts"
    assert spec.linux.rootfs_propagation == "slave"
    res = spec.linux.resources
    assert res is not None and res.memory is not None and res.memory.limit == 536870912
    assert res.memory.kernel_tcp == -1 and res.memory.disable_oom_killer is False
    assert res.network is not None and res.network.class_id == 1048577
    assert res.block_io is not None and res.block_io.throttle_write_iops_device is not None
    assert res.hugepage_limits is not None and res.hugepage_limits[1].page_size == "64KB"
    assert spec.linux.uid_mappings is not None
    assert (spec.linux.uid_mappings[0].container_id, spec.linux.uid_mappings[0].host_id) == (0, 1000)
    assert spec.linux.seccomp is not None and spec.linux.seccomp.default_action == "SCMP_ACT_ALLOW"


def test_absent_is_none_and_empty_stays_empty() -> None:
    bare = validate({"ociVersion": "1.0.0", "root": {"path": "rootfs"}})
    assert bare.mounts is None and bare.process is None and bare.linux is None and bare.hooks is None
    empty = validate(
        {"ociVersion": "1.0.0", "mounts": [], "linux": {"namespaces": [], "maskedPaths": [], "sysctl": {}}}
    )
    assert empty.mounts == [] and empty.linux is not None
    assert empty.linux.namespaces == [] and empty.linux.masked_paths == [] and empty.linux.sysctl == {}
    assert empty.linux.readonly_paths is None


def test_null_means_absent() -> None:
    # Go runtimes decode null into the zero value; accept it as "not given" for optional keys.
    spec = validate({"ociVersion": "1.0.0", "linux": None, "mounts": None, "process": {"cwd": "/", "env": None}})
    assert spec.linux is None and spec.mounts is None and spec.process is not None and spec.process.env is None
    with pytest.raises(ValidationError):
        validate({"ociVersion": "1.0.0", "root": {"path": None}})  # required keys may not be null


def test_models_can_be_built_by_attribute_name() -> None:
    mount = Mount(destination="/data", type="none", source="/src", options=["rbind"])
    assert mount.model_dump(by_alias=True, exclude_none=True) == {
        "destination": "/data",
        "type": "none",
        "source": "/src",
        "options": ["rbind"],
    }
    memory = models.Memory(kernel_tcp=5, disable_oom_killer=True)
    assert memory.model_dump(by_alias=True, exclude_none=True) == {"kernelTCP": 5, "disableOOMKiller": True}
    assert models.IOPriority(class_="IOPRIO_CLASS_BE").model_dump(by_alias=True, exclude_none=True) == {
        "class": "IOPRIO_CLASS_BE"
    }


# --------------------------------------------------------------------------------------------------
# Round trips


def test_spec_example_round_trips(spec_example: dict[str, Any]) -> None:
    spec = validate(spec_example)
    assert spec.model_dump(by_alias=True, exclude_none=True) == spec_example
    # Sub-models dump to the JSON shape too (other modules take plain dicts).
    assert spec.linux is not None and spec.linux.resources is not None and spec.process is not None
    linux = spec_example["linux"]
    assert spec.linux.resources.model_dump(by_alias=True, exclude_none=True) == linux["resources"]
    assert spec.process.model_dump(by_alias=True, exclude_none=True) == spec_example["process"]
    assert [d.model_dump(by_alias=True, exclude_none=True) for d in spec.linux.devices or []] == linux["devices"]
    # And the dump is valid input again.
    assert validate(spec.model_dump(by_alias=True, exclude_none=True)) == spec


def config_md_example(spec_dir: Path) -> dict[str, Any]:
    text = (spec_dir / "config.md").read_text()
    section = text[text.index('## <a name="configExtensibility"') :]
    block = section[section.index("```json") + len("```json") :]
    return orjson.loads(block[: block.index("```")])


def test_config_md_full_example_round_trips(spec_dir: Path) -> None:
    # config.md's reference example has fields the schema test file lacks (timeOffsets, ioPriority, idle...).
    doc = config_md_example(spec_dir)
    spec = Spec.model_validate(doc)  # 1.0.1: within the supported range
    assert spec.linux is not None and spec.linux.time_offsets is not None
    assert spec.linux.time_offsets.monotonic is not None and spec.linux.time_offsets.monotonic.secs == 172800
    assert spec.process is not None and spec.process.io_priority is not None
    assert spec.process.io_priority.class_ == "IOPRIO_CLASS_IDLE"
    assert spec.model_dump(by_alias=True, exclude_none=True) == doc


json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def object_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every JSON object inside `node` (where an unknown key could be added)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        found.append(path)
        for key, value in node.items():
            found += object_paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += object_paths(value, (*path, i))
    return found


def get_in(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


# Objects whose keys are data (names), not properties: a new key there is a new entry, not an unknown key.
MAP_OBJECTS = {("annotations",), ("linux", "sysctl")}


@settings(max_examples=200, deadline=None)
# A null-valued unknown key is "absent" like any other null, so exclude_none drops it: not generated here.
@given(data=st.data(), key=st.text(min_size=1, max_size=12), value=json_values.filter(lambda v: v is not None))
def test_unknown_properties_are_kept_anywhere(
    spec_example: dict[str, Any], data: st.DataObject, key: str, value: Any
) -> None:
    paths = [p for p in object_paths(spec_example) if p not in MAP_OBJECTS]
    path = data.draw(st.sampled_from(paths))
    doc = copy.deepcopy(spec_example)
    target = get_in(doc, path)
    key = "x-" + key  # never collides with a spec property
    target[key] = value
    spec = validate(doc)
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert get_in(dumped, path)[key] == value


# --------------------------------------------------------------------------------------------------
# Types: strict JSON types, ranges, enumerations


def memory_limit(value: Any) -> dict[str, Any]:
    return {"ociVersion": "1.0.0", "linux": {"resources": {"memory": {"limit": value}}}}


@pytest.mark.parametrize("value", ["1024", "1g", 1.0, 1.5, True, [1], {"v": 1}])
def test_integers_are_not_coerced(value: Any) -> None:
    with pytest.raises(ValidationError):
        validate(memory_limit(value))


@pytest.mark.parametrize("value", [1, "true", "yes", 0.0])
def test_booleans_are_not_coerced(value: Any) -> None:
    with pytest.raises(ValidationError):
        validate({"ociVersion": "1.0.0", "root": {"path": "r", "readonly": value}})


@pytest.mark.parametrize("value", [1, True, ["sh"]])
def test_strings_are_not_coerced(value: Any) -> None:
    with pytest.raises(ValidationError):
        validate({"ociVersion": "1.0.0", "hostname": value})


def uid_mapping(host_id: int) -> dict[str, Any]:
    return {"ociVersion": "1.0.0", "linux": {"uidMappings": [{"containerID": 0, "hostID": host_id, "size": 1}]}}


@given(st.integers(0, 2**32 - 1))
def test_uint32_accepts_its_range(n: int) -> None:
    spec = validate(uid_mapping(n))
    assert spec.linux is not None and spec.linux.uid_mappings is not None
    assert spec.linux.uid_mappings[0].host_id == n


@given(st.integers(max_value=-1) | st.integers(min_value=2**32))
def test_uint32_rejects_outside(n: int) -> None:
    with pytest.raises(ValidationError):
        validate(uid_mapping(n))


@given(st.integers(-(2**63), 2**63 - 1))
def test_int64_range(n: int) -> None:
    assert validate(memory_limit(n)).model_dump(by_alias=True)["linux"]["resources"]["memory"]["limit"] == n


@pytest.mark.parametrize(("value", "ok"), [(-1000, True), (1000, True), (0, True), (-1001, False), (1001, False)])
def test_oom_score_adj_range(value: int, ok: bool) -> None:
    doc = {"ociVersion": "1.0.0", "process": {"cwd": "/", "oomScoreAdj": value}}
    if ok:
        validate(doc)
    else:
        with pytest.raises(ValidationError):
            validate(doc)


@given(st.sampled_from(constants.NAMESPACE_TYPES) | st.text(max_size=10))
def test_namespace_type_enumeration(value: str) -> None:
    doc = {"ociVersion": "1.0.0", "linux": {"namespaces": [{"type": value}]}}
    if value in constants.NAMESPACE_TYPES:
        validate(doc)
    else:
        with pytest.raises(ValidationError):
            validate(doc)


@pytest.mark.parametrize(
    "linux",
    [
        {"rootfsPropagation": "rshared"},  # only private/shared/slave/unbindable
        {"devices": [{"type": "x", "path": "/dev/x", "major": 1, "minor": 1}]},
        {"devices": [{"type": "c", "path": "/dev/x", "major": 1}]},  # minor required unless type p
        {"devices": [{"type": "c", "path": "/dev/x", "major": 1, "minor": 1, "fileMode": 512}]},
        {"resources": {"devices": [{"allow": True, "type": "z"}]}},
        {"resources": {"devices": [{"access": "rwm"}]}},  # allow required
        {"resources": {"hugepageLimits": [{"pageSize": "2mb", "limit": 1}]}},
        {"resources": {"blockIO": {"weight": 65536}}},
        {"resources": {"blockIO": {"weightDevice": [{"major": 8, "weight": 1}]}}},
        {"resources": {"unified": {"memory.max": 1}}},
        {"resources": {"rdma": {"mlx": {"hcaHandles": -1}}}},
        {"seccomp": {"syscalls": []}},  # defaultAction required
        {"seccomp": {"defaultAction": "SCMP_ACT_NOPE"}},
        {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}},
        {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NEW"]}},
        {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}},
        {
            "seccomp": {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1}]}],
            }
        },
        {"namespaces": [{"type": "pid"}, {"type": "pid", "path": "/proc/1/ns/pid"}]},
        {"intelRdt": {"memBwSchema": "L3:0=1"}},
        {"intelRdt": {"schemata": ["L3:0=1\nMB:0=2"]}},
        {"memoryPolicy": {"nodes": "0"}},
        {"memoryPolicy": {"mode": "MPOL_NOPE"}},
        {"personality": {"domain": "LINUX64"}},
        {"timeOffsets": {"monotonic": {"nanosecs": -1}}},
        {"netDevices": {"eth0": {"name": 1}}},
    ],
)
def test_invalid_linux_sections(linux: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        validate({"ociVersion": "1.0.0", "linux": linux})


@pytest.mark.parametrize(
    "process",
    [
        {"args": ["sh"]},  # cwd required
        {"cwd": "/", "args": []},
        {"cwd": "/", "rlimits": [{"type": "NOFILE", "soft": 1, "hard": 1}]},
        {"cwd": "/", "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1}]},
        {"cwd": "/", "consoleSize": {"height": 1}},
        {"cwd": "/", "scheduler": {"nice": 1}},
        {"cwd": "/", "scheduler": {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_NOPE"]}},
        {"cwd": "/", "ioPriority": {"priority": 1}},
        {"cwd": "/", "execCPUAffinity": {"initial": "a-b"}},
        {"cwd": "/", "user": {"uid": -1}},
        {"cwd": "/", "user": {"additionalGids": [2**32]}},
    ],
)
def test_invalid_processes(process: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Process.model_validate(process)


def test_windows_process_may_use_command_line_instead_of_args() -> None:
    process = Process.model_validate({"cwd": "c:\\", "args": [], "commandLine": "app.exe /x"})
    assert process.command_line == "app.exe /x"


@pytest.mark.parametrize(
    "doc",
    [
        {"mounts": [{"source": "/x"}]},  # destination required
        {"mounts": [{"destination": "/x", "uidMappings": [{"containerID": 0, "hostID": 0, "size": 1}]}]},
        {"hooks": {"poststart": [{"args": ["x"]}]}},  # path required
        {"hooks": {"poststop": [{"path": "/x", "timeout": 0}]}},
        {"annotations": {"": "empty key"}},
        {"annotations": {"k": 1}},
        {"root": {"readonly": True}},
        {"solaris": []},  # loose, but still an object
    ],
)
def test_invalid_top_level_sections(doc: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        validate({"ociVersion": "1.0.0", **doc})


def test_fifo_devices_need_no_numbers() -> None:
    spec = validate({"ociVersion": "1.0.0", "linux": {"devices": [{"type": "p", "path": "/dev/fifo"}]}})
    assert spec.linux is not None and spec.linux.devices is not None and spec.linux.devices[0].major is None


def test_non_linux_platforms_are_kept_verbatim() -> None:
    doc = {"ociVersion": "1.0.0", "windows": {"layerFolders": ["C:\\l"], "hyperv": {}}, "vm": {"hypervisor": {}}}
    spec = validate(doc)
    assert spec.windows == doc["windows"]
    assert spec.model_dump(by_alias=True, exclude_none=True) == doc


# --------------------------------------------------------------------------------------------------
# State and Features models


def test_state_good_examples(spec_dir: Path) -> None:
    files = sorted((spec_dir / "schema/test/state/good").glob("*.json"))
    assert files
    for path in files:
        doc = orjson.loads(path.read_bytes())
        state = State.model_validate(doc)
        assert state.model_dump(by_alias=True, exclude_none=True) == doc


def test_state_fields() -> None:
    state = State.model_validate({"ociVersion": "1.3.0", "id": "c1", "status": "created", "bundle": "/b", "pid": 7})
    assert (state.oci_version, state.id, state.status, state.pid, state.bundle) == ("1.3.0", "c1", "created", 7, "/b")
    for bad in (
        {"ociVersion": "1.3.0", "id": "c1", "status": "paused", "bundle": "/b"},
        {"ociVersion": "1.3.0", "id": "c1", "status": "created"},
        {"ociVersion": "1.3.0", "id": "c1", "status": "created", "bundle": "/b", "pid": -1},
    ):
        with pytest.raises(ValidationError):
            State.model_validate(bad)


def test_features_examples(spec_dir: Path) -> None:
    for path in sorted((spec_dir / "schema/test/features/good").glob("*.json")):
        doc = orjson.loads(path.read_bytes())
        assert Features.model_validate(doc).model_dump(by_alias=True, exclude_none=True) == doc
    for path in sorted((spec_dir / "schema/test/features/bad").glob("*.json")):
        with pytest.raises(ValidationError):
            Features.model_validate(orjson.loads(path.read_bytes()))


# --------------------------------------------------------------------------------------------------
# Import hygiene


def test_light_modules_do_not_import_pydantic() -> None:
    code = (
        "import sys, engine.spec, engine.spec.constants, engine.spec.version, engine.spec.features\n"
        "assert 'pydantic' not in sys.modules, 'pydantic was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_package_init_has_no_imports() -> None:
    import engine.spec

    source = Path(engine.spec.__file__).read_text()
    assert not re.search(r"^\s*(import|from)\s", source, re.MULTILINE)
