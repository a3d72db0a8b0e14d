"""pydantic v2 models of runtime-spec 1.3: config.json (Spec), process.json (Process), State, Features.

Conventions every model here follows (other modules rely on them):

* The Python attribute is the snake_case form of the JSON key and the JSON key is the alias
  (`spec.linux.cgroups_path` <-> "cgroupsPath"; irregular keys such as "kernelTCP", "classID",
  "containerID" or "class" have explicit aliases: kernel_tcp, class_id, container_id, class_).
  populate_by_name lets Python code build models with the attribute names.
* An optional field that is absent is None, never an empty list or dict, so "absent" and "empty" stay
  distinguishable (an empty `namespaces` list and no `namespaces` key mean different things).
  A JSON null is treated like an absent key, as Go runtimes (runc, crun via specs-go) do.
* `model_dump(by_alias=True, exclude_none=True)` of any model gives back the JSON shape.
* Unknown keys are kept (extra="allow"), never an error: config.md "Extensibility" says runtimes MUST
  ignore unknown properties. They survive a dump, so a round trip does not lose them.
* Validation is strict: JSON types are not coerced ("1024" is not an integer, 1 is not a boolean), because
  the schema says integer/boolean and a silent coercion would hide a broken config.
* Enumerations, integer ranges, patterns and required keys follow schema/*.json. The few rules taken from
  the prose instead are marked "prose:" below; each is a MUST whose violation the runtime would otherwise
  only notice halfway through creating a container.

Validation errors are pydantic ValidationErrors; engine.spec.load turns them into one-line ConfigErrors.

The rules no JSON type expresses ("prose:") live in engine/spec/rules.py as plain functions on JSON-shaped
values; the validators here only call them (model_rule, field_rule), and the compiled validator that the
runtime uses (engine/spec/compiled.py, generated from these models by engine/spec/codegen.py) calls the same
functions. After changing this file, run `python -m engine.spec.codegen` (a test fails until you do).
The non-Linux platform objects (solaris, windows, vm, zos, freebsd) are kept as loose dicts: this engine
never acts on them, it only must not reject a document that carries them.
"""

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel

from engine.spec import rules
from engine.spec.constants import (
    ContainerStatus,
    DeviceCgroupType,
    DeviceType,
    IOPriorityClass,
    MemoryPolicyFlag,
    MemoryPolicyMode,
    NamespaceType,
    PersonalityDomain,
    RootfsPropagation,
    SchedulerFlag,
    SchedulerPolicy,
    SeccompAction,
    SeccompArch,
    SeccompFlag,
    SeccompOperator,
)
from engine.spec.rules import SpecValueError as SpecValueError  # re-exported: it used to be defined here

# Integer types of schema/defs.json. orjson hands Python ints of any size, so the ranges are checked here.
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
Uint16 = Annotated[int, Field(ge=0, le=2**16 - 1)]
Uint32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
Uint64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
# defs.json FileMode: permission bits only, in decimal (438 == 0o666).
FileMode = Annotated[int, Field(ge=0, le=0o777)]
# Hook.timeout: config.md "If set, timeout MUST be greater than zero".
Timeout = Annotated[int, Field(ge=1)]
# process.oomScoreAdj: the kernel's OOM_SCORE_ADJ_MIN..MAX; anything else fails to write to /proc anyway.
OomScoreAdj = Annotated[int, Field(ge=-1000, le=1000)]
StrMap = dict[str, str]


class SpecModel(BaseModel):
    """Base of every model: strict types, camelCase aliases, unknown keys kept."""

    model_config = ConfigDict(
        strict=True,
        extra="allow",
        populate_by_name=True,
        alias_generator=to_camel,
    )


Rule = Callable[[Any, dict[str, Any]], None]


def _context(info: ValidationInfo) -> dict[str, Any]:
    return info.context if isinstance(info.context, dict) else {}


def field_rule(rule: Rule) -> AfterValidator:
    """An after-validator that checks a field's value with `rule` (from engine/spec/rules.py)."""

    def check(value: Any, info: ValidationInfo) -> Any:
        rule(value, _context(info))
        return value

    check.__spec_rule__ = rule  # type: ignore[attr-defined]  # what engine/spec/codegen.py calls instead
    return AfterValidator(check)


def model_rule(rule: Rule) -> Any:
    """A model validator (after the fields) that checks the model's JSON object with `rule`."""

    def check(self: BaseModel, info: ValidationInfo) -> BaseModel:
        rule(self.model_dump(by_alias=True, exclude_none=True), _context(info))
        return self

    check.__spec_rule__ = rule  # type: ignore[attr-defined]
    return model_validator(mode="after")(check)


Annotations = Annotated[StrMap, field_rule(rules.non_empty_keys)]


# --------------------------------------------------------------------------------------------------
# config.md: root, mounts, process, hooks


class Root(SpecModel):
    path: str
    readonly: bool | None = None


class IDMapping(SpecModel):
    """One line of a uid_map/gid_map (linux.uidMappings, linux.gidMappings, mounts[].uidMappings)."""

    container_id: Uint32 = Field(alias="containerID")
    host_id: Uint32 = Field(alias="hostID")
    size: Uint32


class Mount(SpecModel):
    destination: str
    source: str | None = None
    options: list[str] | None = None
    type: str | None = None
    uid_mappings: list[IDMapping] | None = None
    gid_mappings: list[IDMapping] | None = None

    _pairs = model_rule(rules.mappings_come_in_pairs)


class ConsoleSize(SpecModel):
    height: Uint64
    width: Uint64


class User(SpecModel):
    # uid and gid are REQUIRED on POSIX in the prose, but the schema leaves them optional because a
    # Windows user has only a username; None here means "not given" and the runtime treats it as 0.
    uid: Uint32 | None = None
    gid: Uint32 | None = None
    umask: Uint32 | None = None
    additional_gids: list[Uint32] | None = None
    username: str | None = None


class Capabilities(SpecModel):
    # Names are free strings: config.md says unknown capabilities are logged as warnings, not errors.
    bounding: list[str] | None = None
    effective: list[str] | None = None
    inheritable: list[str] | None = None
    permitted: list[str] | None = None
    ambient: list[str] | None = None


class Rlimit(SpecModel):
    type: Annotated[str, Field(pattern=r"^RLIMIT_[A-Z]+$")]
    soft: Uint64
    hard: Uint64


class Scheduler(SpecModel):
    policy: SchedulerPolicy
    nice: Int32 | None = None
    priority: Int32 | None = None
    flags: list[SchedulerFlag] | None = None
    runtime: Uint64 | None = None
    deadline: Uint64 | None = None
    period: Uint64 | None = None


class IOPriority(SpecModel):
    # "class" is a Python keyword, hence the trailing underscore.
    class_: IOPriorityClass = Field(alias="class")
    priority: Int32 | None = None


CpuList = Annotated[str, Field(pattern=r"^[0-9, -]*$")]


class ExecCPUAffinity(SpecModel):
    initial: CpuList | None = None
    final: CpuList | None = None


class Process(SpecModel):
    """config.json "process", and the whole document of `exec --process process.json`."""

    terminal: bool | None = None
    console_size: ConsoleSize | None = None
    user: User | None = None
    args: list[str] | None = None
    command_line: str | None = None
    env: list[str] | None = None
    cwd: str
    capabilities: Capabilities | None = None
    rlimits: list[Rlimit] | None = None
    no_new_privileges: bool | None = None
    apparmor_profile: str | None = None
    oom_score_adj: OomScoreAdj | None = None
    selinux_label: str | None = None
    scheduler: Scheduler | None = None
    io_priority: IOPriority | None = None
    exec_cpu_affinity: ExecCPUAffinity | None = Field(default=None, alias="execCPUAffinity")

    _runnable = model_rule(rules.runnable_process)


class Hook(SpecModel):
    path: str
    args: list[str] | None = None
    env: list[str] | None = None
    timeout: Timeout | None = None


class Hooks(SpecModel):
    prestart: list[Hook] | None = None  # deprecated, still run before createRuntime
    create_runtime: list[Hook] | None = None
    create_container: list[Hook] | None = None
    start_container: list[Hook] | None = None
    poststart: list[Hook] | None = None
    poststop: list[Hook] | None = None


# --------------------------------------------------------------------------------------------------
# config-linux.md


class Namespace(SpecModel):
    type: NamespaceType
    path: str | None = None


class TimeOffset(SpecModel):
    secs: Int64 | None = None
    nanosecs: Uint32 | None = None


class TimeOffsets(SpecModel):
    # The schema names exactly these two clocks (the only ones a time namespace can offset).
    boottime: TimeOffset | None = None
    monotonic: TimeOffset | None = None


class Device(SpecModel):
    type: DeviceType
    path: str
    major: Int64 | None = None
    minor: Int64 | None = None
    file_mode: FileMode | None = None
    uid: Uint32 | None = None
    gid: Uint32 | None = None

    _numbers = model_rule(rules.device_numbers_unless_fifo)


class NetDevice(SpecModel):
    name: str | None = None


class DeviceCgroup(SpecModel):
    """linux.resources.devices[]: one rule of the device allow/deny list."""

    allow: bool
    type: DeviceCgroupType | None = None
    major: Int64 | None = None
    minor: Int64 | None = None
    access: str | None = None


class Memory(SpecModel):
    limit: Int64 | None = None
    reservation: Int64 | None = None
    swap: Int64 | None = None
    kernel: Int64 | None = None
    kernel_tcp: Int64 | None = Field(default=None, alias="kernelTCP")
    swappiness: Uint64 | None = None
    disable_oom_killer: bool | None = Field(default=None, alias="disableOOMKiller")
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


class CPU(SpecModel):
    shares: Uint64 | None = None
    quota: Int64 | None = None
    burst: Uint64 | None = None
    period: Uint64 | None = None
    realtime_runtime: Int64 | None = None
    realtime_period: Uint64 | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: Int64 | None = None


class WeightDevice(SpecModel):
    major: Int64
    minor: Int64
    weight: Uint16 | None = None
    leaf_weight: Uint16 | None = None


class ThrottleDevice(SpecModel):
    major: Int64
    minor: Int64
    rate: Uint64 | None = None


class BlockIO(SpecModel):
    weight: Uint16 | None = None
    leaf_weight: Uint16 | None = None
    weight_device: list[WeightDevice] | None = None
    throttle_read_bps_device: list[ThrottleDevice] | None = None
    throttle_write_bps_device: list[ThrottleDevice] | None = None
    throttle_read_iops_device: list[ThrottleDevice] | None = Field(default=None, alias="throttleReadIOPSDevice")
    throttle_write_iops_device: list[ThrottleDevice] | None = Field(default=None, alias="throttleWriteIOPSDevice")


class HugepageLimit(SpecModel):
    # "<size><unit-prefix>B" with a capital unit, as in the hugetlb.<size>.limit_in_bytes file names.
    page_size: Annotated[str, Field(pattern=r"^[1-9][0-9]*[KMG]B$")]
    limit: Uint64


class InterfacePriority(SpecModel):
    name: str
    priority: Uint32


class Network(SpecModel):
    class_id: Uint32 | None = Field(default=None, alias="classID")
    priorities: list[InterfacePriority] | None = None


class Pids(SpecModel):
    # The schema still lists "limit" as required, but config-linux.md (the canonical text) made it
    # OPTIONAL in 1.3 and specs-go emits `"pids": {}` for an unset limit, so it is accepted.
    limit: Int64 | None = None


class Rdma(SpecModel):
    hca_handles: Uint32 | None = None
    hca_objects: Uint32 | None = None


class Resources(SpecModel):
    """linux.resources; also the document of `update --resources resources.json`."""

    devices: list[DeviceCgroup] | None = None
    memory: Memory | None = None
    cpu: CPU | None = None
    block_io: BlockIO | None = Field(default=None, alias="blockIO")
    hugepage_limits: list[HugepageLimit] | None = None
    network: Network | None = None
    pids: Pids | None = None
    # Keyed by RDMA device name (e.g. "mlx5_1").
    rdma: dict[str, Rdma] | None = None
    # cgroup v2 file name -> content, written verbatim.
    unified: StrMap | None = None


class IntelRdt(SpecModel):
    clos_id: str | None = Field(default=None, alias="closID")
    schemata: Annotated[list[str], field_rule(rules.one_line_each)] | None = None
    l3_cache_schema: str | None = None
    mem_bw_schema: Annotated[str, Field(pattern=r"^MB:[^\n]*$")] | None = None
    enable_monitoring: bool | None = None


class SyscallArg(SpecModel):
    index: Uint32
    value: Uint64
    value_two: Uint64 | None = None
    op: SeccompOperator


class Syscall(SpecModel):
    names: Annotated[list[str], Field(min_length=1)]
    action: SeccompAction
    errno_ret: Uint32 | None = None
    args: list[SyscallArg] | None = None


class Seccomp(SpecModel):
    default_action: SeccompAction
    default_errno_ret: Uint32 | None = None
    architectures: list[SeccompArch] | None = None
    flags: list[SeccompFlag] | None = None
    listener_path: str | None = None
    listener_metadata: str | None = None
    syscalls: list[Syscall] | None = None

    _listener = model_rule(rules.metadata_needs_listener)


class MemoryPolicy(SpecModel):
    # prose: mode is REQUIRED (the schema omits "required"); set_mempolicy(2) has nothing to do without it.
    mode: MemoryPolicyMode
    nodes: str | None = None
    flags: list[MemoryPolicyFlag] | None = None


class Personality(SpecModel):
    # prose: domain is REQUIRED (the schema omits "required"); personality(2) needs it.
    domain: PersonalityDomain
    # "Currently no flag values are supported", so these are free strings for the runtime to refuse.
    flags: list[str] | None = None


class Linux(SpecModel):
    namespaces: list[Namespace] | None = None
    uid_mappings: list[IDMapping] | None = None
    gid_mappings: list[IDMapping] | None = None
    time_offsets: TimeOffsets | None = None
    devices: list[Device] | None = None
    # Keyed by the interface name on the host.
    net_devices: dict[str, NetDevice] | None = None
    cgroups_path: str | None = None
    resources: Resources | None = None
    intel_rdt: IntelRdt | None = None
    sysctl: StrMap | None = None
    seccomp: Seccomp | None = None
    rootfs_propagation: RootfsPropagation | None = None
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None
    mount_label: str | None = None
    personality: Personality | None = None
    memory_policy: MemoryPolicy | None = None

    _namespaces = model_rule(rules.unique_namespaces)


# --------------------------------------------------------------------------------------------------
# The whole config.json


class Spec(SpecModel):
    """config.json. Validate with engine.spec.load (it turns errors into one-line ConfigErrors).

    The ociVersion range check can be switched off with the validation context
    {"check_oci_version": False}, for tools that only need schema conformance (the spec's own example
    document says "0.5.0-dev").
    """

    # config.md: SemVer, and (unless the context waives it) a version this engine implements.
    oci_version: Annotated[str, field_rule(rules.supported_oci_version)]
    root: Root | None = None
    mounts: list[Mount] | None = None
    process: Process | None = None
    hostname: str | None = None
    domainname: str | None = None
    hooks: Hooks | None = None
    annotations: Annotations | None = None
    linux: Linux | None = None
    # Other platforms: accepted, kept verbatim, never interpreted.
    solaris: dict[str, Any] | None = None
    windows: dict[str, Any] | None = None
    vm: dict[str, Any] | None = None
    zos: dict[str, Any] | None = None
    freebsd: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------------
# state (runtime.md "State", schema/state-schema.json) and features (features.md)


class State(SpecModel):
    # Plain string: the state document reports whatever version the runtime writes; the schema's own
    # example says "0.2.0", so no range check here.
    oci_version: str
    id: str
    status: ContainerStatus
    pid: Annotated[int, Field(ge=0)] | None = None
    bundle: str
    annotations: Annotations | None = None


class CgroupFeatures(SpecModel):
    v1: bool | None = None
    v2: bool | None = None
    systemd: bool | None = None
    systemd_user: bool | None = None
    rdma: bool | None = None


class SeccompFeatures(SpecModel):
    enabled: bool | None = None
    actions: list[SeccompAction] | None = None
    operators: list[SeccompOperator] | None = None
    archs: list[SeccompArch] | None = None
    known_flags: list[SeccompFlag] | None = None
    supported_flags: list[SeccompFlag] | None = None


class EnabledFeature(SpecModel):
    enabled: bool | None = None


class IntelRdtFeatures(SpecModel):
    enabled: bool | None = None
    schemata: bool | None = None
    monitoring: bool | None = None


class MountExtensionsFeatures(SpecModel):
    idmap: EnabledFeature | None = None


class MemoryPolicyFeatures(SpecModel):
    modes: list[MemoryPolicyMode] | None = None
    flags: list[MemoryPolicyFlag] | None = None


class LinuxFeatures(SpecModel):
    namespaces: list[NamespaceType] | None = None
    capabilities: list[Annotated[str, Field(pattern=r"^CAP_[A-Z_]+$")]] | None = None
    cgroup: CgroupFeatures | None = None
    seccomp: SeccompFeatures | None = None
    apparmor: EnabledFeature | None = None
    selinux: EnabledFeature | None = None
    intel_rdt: IntelRdtFeatures | None = None
    mount_extensions: MountExtensionsFeatures | None = None
    net_devices: EnabledFeature | None = None
    memory_policy: MemoryPolicyFeatures | None = None


class Features(SpecModel):
    # Plain strings: a features document may name any version (runc reports "1.0.2-dev").
    oci_version_min: str
    oci_version_max: str
    hooks: list[str] | None = None
    mount_options: list[str] | None = None
    annotations: StrMap | None = None
    potentially_unsafe_config_annotations: list[str] | None = None
    linux: LinuxFeatures | None = None
