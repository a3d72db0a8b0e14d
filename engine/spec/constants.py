"""Enumerations and fixed lists from runtime-spec 1.3 (schema/defs-linux.json, config.md, config-linux.md).

Plain `typing` only, no pydantic: engine.spec.features and hot CLI code import these without paying for
the model machinery. Each Literal alias is the single source of truth; the matching tuple is derived from
it, so the model's accepted values and what `engine features` advertises cannot drift apart.
"""

from typing import Final, Literal, get_args

# The runtime-spec versions this engine accepts in config.json and advertises in features.json (defined in
# engine.spec.version, which create imports without typing).
from engine.spec.version import OCI_VERSION_MAX as OCI_VERSION_MAX
from engine.spec.version import OCI_VERSION_MIN as OCI_VERSION_MIN

NamespaceType = Literal["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"]
NAMESPACE_TYPES: Final[tuple[str, ...]] = get_args(NamespaceType)

RootfsPropagation = Literal["private", "shared", "slave", "unbindable"]
ROOTFS_PROPAGATIONS: Final[tuple[str, ...]] = get_args(RootfsPropagation)

SeccompAction = Literal[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
]
SECCOMP_ACTIONS: Final[tuple[str, ...]] = get_args(SeccompAction)

SeccompOperator = Literal[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
]
SECCOMP_OPERATORS: Final[tuple[str, ...]] = get_args(SeccompOperator)

SeccompArch = Literal[
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
]
SECCOMP_ARCHS: Final[tuple[str, ...]] = get_args(SeccompArch)

SeccompFlag = Literal[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
]
SECCOMP_FLAGS: Final[tuple[str, ...]] = get_args(SeccompFlag)

SchedulerPolicy = Literal[
    "SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE", "SCHED_DEADLINE"
]
SCHEDULER_POLICIES: Final[tuple[str, ...]] = get_args(SchedulerPolicy)

SchedulerFlag = Literal[
    "SCHED_FLAG_RESET_ON_FORK",
    "SCHED_FLAG_RECLAIM",
    "SCHED_FLAG_DL_OVERRUN",
    "SCHED_FLAG_KEEP_POLICY",
    "SCHED_FLAG_KEEP_PARAMS",
    "SCHED_FLAG_UTIL_CLAMP_MIN",
    "SCHED_FLAG_UTIL_CLAMP_MAX",
]
SCHEDULER_FLAGS: Final[tuple[str, ...]] = get_args(SchedulerFlag)

IOPriorityClass = Literal["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"]
IOPRIORITY_CLASSES: Final[tuple[str, ...]] = get_args(IOPriorityClass)

MemoryPolicyMode = Literal[
    "MPOL_DEFAULT",
    "MPOL_BIND",
    "MPOL_INTERLEAVE",
    "MPOL_WEIGHTED_INTERLEAVE",
    "MPOL_PREFERRED",
    "MPOL_PREFERRED_MANY",
    "MPOL_LOCAL",
]
MEMORY_POLICY_MODES: Final[tuple[str, ...]] = get_args(MemoryPolicyMode)

MemoryPolicyFlag = Literal["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
MEMORY_POLICY_FLAGS: Final[tuple[str, ...]] = get_args(MemoryPolicyFlag)

PersonalityDomain = Literal["LINUX", "LINUX32"]
PERSONALITY_DOMAINS: Final[tuple[str, ...]] = get_args(PersonalityDomain)

# linux.devices[].type (mknod(1): char, block, unbuffered char, fifo).
DeviceType = Literal["c", "b", "u", "p"]
DEVICE_TYPES: Final[tuple[str, ...]] = get_args(DeviceType)

# linux.resources.devices[].type: the schema only says "string", but config-linux.md lists exactly
# these and the runtime must reject values it cannot apply, so they are enforced.
DeviceCgroupType = Literal["a", "c", "b"]
DEVICE_CGROUP_TYPES: Final[tuple[str, ...]] = get_args(DeviceCgroupType)

ContainerStatus = Literal["creating", "created", "running", "stopped"]
CONTAINER_STATUSES: Final[tuple[str, ...]] = get_args(ContainerStatus)

# JSON names of the hook stages, in the order config.md says they run ("prestart" is deprecated but
# still honoured, before createRuntime).
HOOK_NAMES: Final[tuple[str, ...]] = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)

# Every option string in config.md's "Linux mount options" table (MUST, SHOULD and MAY rows), in the
# table's order. tests/unit/test_spec_features.py checks this against the table itself.
LINUX_MOUNT_OPTIONS: Final[tuple[str, ...]] = (
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
    "idmap",
    "ridmap",
)

# All Linux capabilities known to this engine; the index of each name is its kernel number
# (linux/capability.h), so CAPABILITIES.index("CAP_SYS_ADMIN") == 21.
CAPABILITIES: Final[tuple[str, ...]] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
