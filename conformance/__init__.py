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
)


def load_checks() -> None:
    for name in SECTION_MODULES:
        importlib.import_module(name)
