"""Regenerate podman-default-seccomp.json: containers/common's default seccomp profile as the OCI
`linux.seccomp` object podman puts in config.json for an amd64 container with podman's default caps.

The source is Debian's golang-github-containers-common (0.50.1) /usr/share/containers/seccomp.json:
    apt-get download golang-github-containers-common && dpkg -x golang-github-containers-common_*.deb x
    python3 tests/unit/data/make_podman_seccomp.py x/usr/share/containers/seccomp.json
The conversion follows containers/common pkg/seccomp: keep the archMap entry of the host architecture
(with its sub-architectures), and keep a syscalls entry only if its includes/excludes (arches, caps) fit
amd64 and the capability list below (containers.conf default_capabilities).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GOARCH = "amd64"
NATIVE = "SCMP_ARCH_X86_64"
DEFAULT_CAPS = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
}


def convert(profile: dict) -> dict:
    out: dict = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    for entry in profile.get("archMap") or []:
        if entry["architecture"] == NATIVE:
            out["architectures"] = [entry["architecture"], *entry.get("subArchitectures", [])]
    syscalls = []
    for call in profile["syscalls"]:
        inc, exc = call.get("includes") or {}, call.get("excludes") or {}
        if exc.get("arches") and GOARCH in exc["arches"]:
            continue
        if any(cap in DEFAULT_CAPS for cap in exc.get("caps") or []):
            continue
        if inc.get("arches") and GOARCH not in inc["arches"]:
            continue
        if any(cap not in DEFAULT_CAPS for cap in inc.get("caps") or []):
            continue
        rule: dict = {"names": call["names"], "action": call["action"]}
        if call.get("errnoRet") is not None:
            rule["errnoRet"] = call["errnoRet"]
        if call.get("args"):
            rule["args"] = [
                {"index": a["index"], "value": a["value"], "valueTwo": a.get("valueTwo", 0), "op": a["op"]}
                for a in call["args"]
            ]
        syscalls.append(rule)
    out["syscalls"] = syscalls
    return out


if __name__ == "__main__":
    source = json.loads(Path(sys.argv[1]).read_text())
    target = Path(__file__).with_name("podman-default-seccomp.json")
    target.write_text(json.dumps(convert(source), indent=1) + "\n")
    print(f"wrote {target}")
