"""Writing a new user namespace's uid_map and gid_map (user_namespaces(7)), as root or as a user.

`engine create` writes the maps of its intermediate child, which has just unshared the user namespace and
waits (engine/init.py). Who may write what:

- root (or root of the user namespace engine runs in, e.g. podman's): any mapping of ids it has itself, in
  one write per file;
- a user: one line mapping its own euid (egid) only, and for gid_map only once /proc/<pid>/setgroups says
  "deny" (the kernel's rule: else the container could drop a group the user was kept out of with);
- a user whose mapping holds anything else (subordinate ids, or its own id in a range): newuidmap/newgidmap,
  the setuid helpers of the uidmap package, which check /etc/subuid and /etc/subgid. Before running them
  engine checks the same files itself, to name the mapping that cannot be made.

The intermediate child must be dumpable meanwhile: a non-dumpable process's /proc files belong to root, so a
user could neither open them nor pass newuidmap's owner check (runc's nsexec does the same).
"""

from __future__ import annotations

import os
import pwd

from engine.errors import ConfigError

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from engine.spec.typed import IDMapping, Linux

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"

# linux.uidMappings / gidMappings key -> (proc file, helper, subordinate id file, "uid"/"gid")
_KINDS = {
    "uidMappings": ("uid_map", "newuidmap", SUBUID, "uid"),
    "gidMappings": ("gid_map", "newgidmap", SUBGID, "gid"),
}


def map_text(mappings: list[IDMapping]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def only_own_id(mappings: list[IDMapping], own: int) -> bool:
    """One mapping of just the caller's own id: what the kernel lets a user write without help."""
    return len(mappings) == 1 and mappings[0]["size"] == 1 and mappings[0]["hostID"] == own


def write_id_maps(pid: int, linux: Linux) -> None:
    """Write pid's uid_map and gid_map from linux.uidMappings / gidMappings. Raises ConfigError naming the
    mapping that cannot be made."""
    privileged = os.geteuid() == 0
    for key, mappings in (
        ("uidMappings", linux.get("uidMappings", [])),
        ("gidMappings", linux.get("gidMappings", [])),
    ):
        own = os.geteuid() if key == "uidMappings" else os.getegid()
        if privileged:
            _write(pid, key, map_text(mappings))
        elif only_own_id(mappings, own):
            if key == "gidMappings":
                _write_setgroups_deny(pid)
            _write(pid, key, map_text(mappings))
        else:
            _run_helper(pid, key, mappings)


def _proc_write(pid: int, name: str, data: bytes) -> None:
    """Through a procfs engine opened and proved (engine.linux.procfs), never a /proc path a mount could cover."""
    from engine.linux.procfs import ProcFS

    with ProcFS.open() as proc:
        proc.write(f"{pid}/{name}", data)


def _write(pid: int, key: str, text: str) -> None:
    name = _KINDS[key][0]
    try:
        _proc_write(pid, name, text.encode())
    except OSError as err:
        raise ConfigError(f"config.json: linux.{key}: writing {name}: {err.strerror}") from None


def _write_setgroups_deny(pid: int) -> None:
    try:
        _proc_write(pid, "setgroups", b"deny")
    except OSError as err:
        raise ConfigError(f"config.json: linux.gidMappings: writing setgroups: {err.strerror}") from None


def _run_helper(pid: int, key: str, mappings: list[IDMapping]) -> None:
    _, helper, _, _ = _KINDS[key]
    check_subordinate_ids(key, mappings)
    import shutil  # rootless multi-id mappings only (in create, before any fork): fnmatch, bz2, lzma cost ~2 ms

    path = shutil.which(helper)
    if path is None:
        raise ConfigError(
            f"config.json: linux.{key}: mapping more than your own {_KINDS[key][3]} needs {helper}, which is not"
            " installed (Debian package uidmap)"
        )
    args = [path, str(pid)]
    for m in mappings:
        args += [str(m["containerID"]), str(m["hostID"]), str(m["size"])]
    import subprocess  # here: every create imports this module, and only newuidmap/newgidmap need subprocess

    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        raise ConfigError(f"config.json: linux.{key}: {helper} failed: {detail}")


def subordinate_ranges(path: str, user: str, uid: int) -> list[tuple[int, int]]:
    """(start, count) ranges /etc/subuid (or subgid) gives the user, by name or by number (subuid(5))."""
    ranges = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0] not in (user, str(uid)):
            continue
        try:
            ranges.append((int(fields[1]), int(fields[2])))
        except ValueError:
            continue
    return ranges


def check_subordinate_ids(key: str, mappings: list[IDMapping]) -> None:
    """What newuidmap/newgidmap will allow, checked first so that the error names the mapping: each mapping
    lies in one range of /etc/subuid (subgid), or is the caller's own id alone."""
    _, _, path, kind = _KINDS[key]
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
        own = pwd.getpwuid(uid).pw_uid if kind == "uid" else pwd.getpwuid(uid).pw_gid
    except KeyError:
        user, own = str(uid), (uid if kind == "uid" else os.getgid())
    ranges = subordinate_ranges(path, user, uid)
    for i, m in enumerate(mappings):
        host, size = m["hostID"], m["size"]
        if size == 1 and host == own:
            continue
        if any(start <= host and host + size <= start + count for start, count in ranges):
            continue
        allowed = ", ".join(f"{start}-{start + count - 1}" for start, count in ranges) or "none"
        raise ConfigError(
            f"config.json: linux.{key}[{i}]: host {kind}s {host}-{host + size - 1} are not yours to map:"
            f" {path} gives {user} ({kind} {own}) {allowed}"
        )
