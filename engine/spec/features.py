"""The features.json document `engine features` prints (runtime-spec features.md / features-linux.md).

Built from engine.spec.constants only (no pydantic), so the command stays cheap. The document says what
this engine *recognizes and implements*, independent of what the host kernel offers (features.md: "including
options that might not be supported by the host operating system").
"""

from typing import Any

from engine.spec.constants import (
    CAPABILITIES,
    HOOK_NAMES,
    LINUX_MOUNT_OPTIONS,
    OCI_VERSION_MAX,
    OCI_VERSION_MIN,
    SECCOMP_ACTIONS,
    SECCOMP_ARCHS,
    SECCOMP_FLAGS,
    SECCOMP_OPERATORS,
)

# Namespaces in the order runc-compatible tools print them; all eight are implemented.
FEATURE_NAMESPACES: tuple[str, ...] = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")

# Seccomp filter flags the engine passes to seccomp(2). SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is only
# meaningful with a user-notification listener and needs Linux 5.19, so it is recognized but not claimed.
SUPPORTED_SECCOMP_FLAGS: tuple[str, ...] = (
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
)

# What is implemented. Flip these only together with the code that does the work: a consumer such as
# containerd reads features.json to decide what it may ask for.
APPARMOR_ENABLED = False
SELINUX_ENABLED = False


def features_document() -> dict[str, Any]:
    """The features.json object, JSON-shaped (camelCase keys). A fresh dict on every call."""
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": list(HOOK_NAMES),
        "mountOptions": list(LINUX_MOUNT_OPTIONS),
        "linux": {
            "namespaces": list(FEATURE_NAMESPACES),
            "capabilities": list(CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": True},
            "seccomp": {
                "enabled": True,
                "actions": list(SECCOMP_ACTIONS),
                "operators": list(SECCOMP_OPERATORS),
                "archs": list(SECCOMP_ARCHS),
                "knownFlags": list(SECCOMP_FLAGS),
                "supportedFlags": list(SUPPORTED_SECCOMP_FLAGS),
            },
            "apparmor": {"enabled": APPARMOR_ENABLED},
            "selinux": {"enabled": SELINUX_ENABLED},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},  # idmap/ridmap: refused until implemented
            "netDevices": {"enabled": False},
        },
        # Kept minimal. The runc checkpoint key is what runc-aware callers (containerd, CRI-O) consult
        # before attempting `checkpoint`; saying "false" stops them from trying.
        "annotations": {"org.opencontainers.runc.checkpoint.enabled": "false"},
    }
