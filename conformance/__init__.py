"""engine's runtime-spec conformance suite, runnable against any runc-compatible runtime.

    RUNTIME=/usr/sbin/runc python -m conformance [--list] [-k SUBSTR] [-v]

Checks live in one module per spec section and register themselves with `@check(...)` on import;
SECTION_MODULES is the order they run and are listed in. To cover a new section (config.md,
config-linux.md, ...) add a module and name it here.
"""

from __future__ import annotations

import importlib

SECTION_MODULES = (
    "conformance.runtime_lifecycle",  # runtime.md: Scope, State, Lifecycle, Errors, Operations
    "conformance.state_schema",  # runtime.md State: schema/state-schema.json
    "conformance.lifecycle_hooks",  # runtime.md Lifecycle steps 3-13, config.md POSIX-platform Hooks
    "conformance.runtime_linux",  # runtime-linux.md
    "conformance.config_linux",  # config-linux.md: namespaces, cgroupsPath
    "conformance.config_mounts",  # config.md: root, mounts, Linux mount options (seen from inside)
    "conformance.config_process",  # config.md: process, rlimits, capabilities, user, hostname, domainname
    "conformance.config_linux_more",  # config-linux.md: devices, masked/readonly paths, sysctl, namespaces
)


def load_checks() -> None:
    for name in SECTION_MODULES:
        importlib.import_module(name)
