"""Which cgroup hierarchies this host has, and where a container's cgroupsPath lands in each.

Read once per manager from /proc/self/mountinfo and /proc/self/cgroup:

- "v1":     only cgroup v1 hierarchies (one per controller or comounted group, plus named ones like name=systemd);
- "hybrid": v1 hierarchies do the work, and a cgroup2 mount (usually /sys/fs/cgroup/unified) exists beside them,
            owning whatever controllers v1 does not (hugetlb on the development machine) or none at all;
- "v2":     one cgroup2 hierarchy with every controller (named v1 hierarchies, if any, are ignored).

cgroupsPath (config-linux.md "Cgroups Path", with runc's reading of the MAYs):

- absolute ("/a/b"): relative to each hierarchy's mount point, i.e. <mount>/a/b;
- relative ("a/b"):  v1 hierarchies: below our own cgroup in that hierarchy (runc's fs driver);
                     cgroup2: below the PARENT of our own cgroup (runc's fs2 driver: our own cgroup has processes,
                     so the no-internal-process rule would stop controllers being enabled below it);
- ".." cannot climb: the path is cleaned as if it were rooted, like runc's CleanPath;
- unset (None or ""): "/engine/<container id>", an absolute path, so that every `engine` process finds the same
  cgroup whatever cgroup it runs in (runc's own default is the relative "<id>").
"""

from __future__ import annotations

import posixpath

from engine.cgroups.fs import CGROUPS_PATH, CgroupError
from engine.record import record

DEFAULT_PARENT = "/engine"


# Immutable records, neither namedtuples nor dataclasses: `collections` (for namedtuple) costs create's parent
# ~1.5 ms of imports, `dataclasses` (inspect, ast) ~15 ms; engine.record has what these need.
@record(frozen=True)
class Hierarchy:
    """mount_point: e.g. /sys/fs/cgroup/memory, /sys/fs/cgroup/unified, /sys/fs/cgroup
    root: the mount's root inside the hierarchy (mountinfo field 4); "/" unless bind-mounted from a subtree
    name: "memory", "cpu,cpuacct", "name=systemd"; "unified" for cgroup2
    controllers: v1 controllers of this hierarchy (empty for named and cgroup2 ones)
    own: our process's cgroup in this hierarchy, from /proc/self/cgroup"""

    mount_point: str
    root: str
    name: str
    controllers: tuple[str, ...] = ()
    own: str = "/"

    @property
    def is_v2(self) -> bool:
        return self.name == "unified"

    def own_dir(self) -> str:
        """Our own cgroup as a directory under the mount point."""
        rel = posixpath.relpath(self.own, self.root) if _under(self.own, self.root) else "."
        return posixpath.normpath(posixpath.join(self.mount_point, rel))


@record(frozen=True)
class Layout:
    """mode: "v1" | "hybrid" | "v2"; known: every controller the kernel knows (/proc/cgroups), for clear
    "not mounted" errors."""

    mode: str
    v1: tuple[Hierarchy, ...] = ()
    unified: Hierarchy | None = None
    known: frozenset[str] = frozenset()

    def v1_for(self, controller: str) -> Hierarchy | None:
        for h in self.v1:
            if controller in h.controllers:
                return h
        return None


def _preference_of(root: str, mount_point: str) -> int:
    # Of several mounts of one hierarchy, prefer the one that shows all of it, then the conventional place.
    return (2 if root == "/" else 0) + (1 if posixpath.dirname(mount_point) == "/sys/fs/cgroup" else 0)


def _preference(h: Hierarchy) -> int:
    return _preference_of(h.root, h.mount_point)


def _under(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root.rstrip("/") + "/")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit() and len(field[i + 1 : i + 4]) == 3:
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def detect(mountinfo: str = "/proc/self/mountinfo", cgroup_file: str = "/proc/self/cgroup") -> Layout:
    return detect_from(_read(cgroup_file), _read(mountinfo))


def detect_from(proc_self_cgroup: str, mountinfo: str) -> Layout:
    """detect() from the texts of /proc/self/cgroup and /proc/self/mountinfo read already (create's warm-up reads
    them first thing: engine/cgroups/attach_warmup.py)."""
    with open("/proc/cgroups") as f:
        known = frozenset(line.split()[0] for line in f if line.strip() and not line.startswith("#"))
    return parse(proc_self_cgroup, mountinfo, known)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def parse(proc_self_cgroup: str, mountinfo: str, known: frozenset[str]) -> Layout:
    """The layout from the texts of /proc/self/cgroup and /proc/self/mountinfo (pure: unit-testable)."""
    own: dict[frozenset[str], str] = {}
    own_v2 = "/"
    for line in proc_self_cgroup.splitlines():
        if not line:
            continue
        num, listed, path = line.split(":", 2)
        if num == "0" and listed == "":
            own_v2 = path
        else:
            own[frozenset(listed.split(","))] = path

    v1: dict[str, Hierarchy] = {}  # keyed by superblock (major:minor): bind mounts of one hierarchy count once
    unified: Hierarchy | None = None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, rfields = left.split(), right.split()
        if len(rfields) < 3 or rfields[0] not in ("cgroup", "cgroup2"):
            continue
        dev, root, mount_point = fields[2], _unescape(fields[3]), _unescape(fields[4])
        if rfields[0] == "cgroup2":
            # Prefer the conventional mount points when cgroup2 is mounted more than once.
            if unified is None or mount_point in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                unified = Hierarchy(mount_point, root, "unified", (), own_v2)
            continue
        opts = [o for o in rfields[2].split(",") if o not in ("rw", "ro")]
        ctrls = tuple(o for o in opts if o in known)
        names = tuple(o for o in opts if o.startswith("name="))
        if not ctrls and not names:
            continue
        if dev in v1 and _preference(v1[dev]) >= _preference_of(root, mount_point):
            continue  # a bind mount of a hierarchy already seen, and no better a view of it
        name = ",".join(ctrls) if ctrls else names[0]
        key = frozenset(ctrls + names)
        v1[dev] = Hierarchy(mount_point, root, name, ctrls, own.get(key, "/"))

    with_controllers = [h for h in v1.values() if h.controllers]
    if not with_controllers:
        if unified is None:
            raise CgroupError("no cgroup filesystem is mounted (neither cgroup v1 nor cgroup2 in /proc/self/mountinfo)")
        return Layout("v2", (), unified, known)
    return Layout("hybrid" if unified is not None else "v1", tuple(v1.values()), unified, known)


def clean_cgroups_path(cgroups_path: str | None, container_id: str) -> str:
    """The cgroupsPath to use: cleaned, checked, or the default for an unset one."""
    if not cgroups_path:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise CgroupError(f"container id {container_id!r} cannot name a cgroup")
        # Relative, below the runtime's own cgroup (runc's default is the relative <id> too): a supervisor that
        # runs us inside a cgroup (a CI job, a systemd service) keeps its containers accounted there.
        return f"{DEFAULT_PARENT.strip('/')}/{container_id}"
    if "\0" in cgroups_path or "\n" in cgroups_path:
        raise CgroupError(f"{CGROUPS_PATH}: {cgroups_path!r} contains a NUL or newline character")
    absolute = cgroups_path.startswith("/")
    # Clean as if rooted, so that ".." cannot climb above the base the path is relative to.
    cleaned = posixpath.normpath("/" + cgroups_path)
    cleaned = "/" + cleaned.lstrip("/")
    if cleaned == "/":
        raise CgroupError(
            f"{CGROUPS_PATH}: {cgroups_path!r} names the cgroup a container would share with everything else; "
            "give the container a cgroup of its own"
        )
    return cleaned if absolute else cleaned.lstrip("/")


def directory_in(h: Hierarchy, cgroups_path: str) -> str:
    """Where a cleaned cgroupsPath lands in hierarchy h (see the module docstring)."""
    if cgroups_path.startswith("/"):
        return h.mount_point.rstrip("/") + cgroups_path
    base = h.own_dir()
    if h.is_v2 and base != h.mount_point.rstrip("/"):
        base = posixpath.dirname(base)
    return posixpath.join(base, cgroups_path)
