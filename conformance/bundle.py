"""config.json written by the suite itself, so results never depend on the runtime's own `spec` command."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# Inside the container the per-check host directory is bind-mounted here; programs and hooks leave
# their marker files in it so the suite can observe from the host what ran, and when.
SHARED_IN_CONTAINER = "/tmp"

# The ociVersion the suite's configs declare: the oldest 1.x release whose features they use, so that
# any 1.x runtime (runc 1.1 implements 1.0.2) accepts them.
CONFIG_OCI_VERSION = "1.0.2"

# A program that never exits on its own. It runs as PID 1 of a new PID namespace, where signals without
# a handler are ignored (except SIGKILL), so the suite stops it with KILL.
SLEEP_FOREVER = "exec sleep 600"


def shell(script: str, *extra: str) -> list[str]:
    """process.args running `script` with the rootfs's busybox sh ($0, $1... = extra)."""
    return ["sh", "-c", script, *extra]


def base_config(
    rootfs: Path,
    shared: Path,
    args: list[str] | None,
    *,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A minimal Linux config: the five usual namespaces, the standard mounts, a read-only shared rootfs.

    `args=None` leaves `process` out entirely (for the start-without-process check).
    """
    config: dict[str, Any] = {
        "ociVersion": CONFIG_OCI_VERSION,
        # Read-only so that every check (and every runtime under test) can share one rootfs safely.
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "conformance",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            # /tmp already exists in the rootfs, so no runtime has to create a mount point in it.
            {
                "destination": SHARED_IN_CONTAINER,
                "type": "bind",
                "source": str(shared),
                "options": ["rbind", "rw"],
            },
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts", "network")],
        },
    }
    if args is not None:
        config["process"] = {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                key: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                for key in ("bounding", "effective", "permitted")
            },
            "noNewPrivileges": True,
        }
    if annotations is not None:
        config["annotations"] = annotations
    return config


def write_bundle(path: Path, config: dict[str, Any]) -> Path:
    """Create bundle directory `path` holding only config.json (root.path points at the shared rootfs)."""
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "config.json.tmp"
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, path / "config.json")
    return path
