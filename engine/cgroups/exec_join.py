"""`engine exec --cgroup [controller[,controller...]:]path`: the cgroup the new process joins in each hierarchy.

runc's semantics (exec.go getSubCgroupPaths, libcontainer newSetnsProcess), checked against runc 1.1.5:

- no --cgroup: the container's cgroup in every hierarchy;
- one bare path: that sub-cgroup of the container's cgroup in every hierarchy (the only form on cgroup v2);
- "ctrl:path", repeatable, several comma-separated controllers per flag: that sub-cgroup in the hierarchy of each
  named controller, the container's cgroup in the others; a controller this host has no hierarchy for is an
  error, as is a bare path next to other --cgroup flags, or a controller form on cgroup v2;
- the path is relative to the container's cgroup ("/" is the container's cgroup itself) and must stay inside
  it: ".." that climbs out is refused; the sub-cgroup must exist (joining one that does not is an error).

Stricter than runc 1.1.5, on purpose: a path with a second ":" is refused (runc too), and so are an empty
controller name and a controller named twice (runc 1.1.5 let the last one win; newer runc refuses them too), and
a path that leaves the container's cgroup for a sibling that shares its name as a prefix ("../<id>-other", which
runc 1.1.5's string-prefix check let through). "unified" names the cgroup2 hierarchy of a hybrid host, and a
controller of a comounted hierarchy (cpu in "cpu,cpuacct") names that hierarchy.
"""

from __future__ import annotations

import posixpath

from engine.cgroups.fs import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from engine.cgroups.manager import Manager


def parse(args: list[str]) -> dict[str, str]:
    """{controller: path}, or {"": path} for the bare form."""
    subs: dict[str, str] = {}
    for arg in args:
        controllers, sep, path = arg.partition(":")
        if not sep:
            if len(args) != 1:
                raise CgroupError(f"--cgroup {arg!r}: missing the <controller>: prefix (needed with several --cgroup)")
            return {"": arg}
        if ":" in path:
            raise CgroupError(f"--cgroup {arg!r}: expected [<controller>[,<controller>...]:]<path>")
        for name in controllers.split(","):
            if not name:
                raise CgroupError(f"--cgroup {arg!r}: empty controller name")
            if name in subs:
                raise CgroupError(f"--cgroup {arg!r}: controller {name} given more than once")
            subs[name] = path
    return subs


def inside(base: str, sub: str, arg: str) -> str:
    """base/sub, refused if it is not base or below it."""
    path = posixpath.normpath(posixpath.join(base, sub.lstrip("/")))
    if path != base and not path.startswith(base.rstrip("/") + "/"):
        raise CgroupError(f"--cgroup {arg!r}: bad sub cgroup path: it leaves the container's cgroup {base}")
    return path


def exec_targets(mgr: Manager, args: list[str]) -> dict[str, str]:
    """Hierarchy name -> the directory the exec'd process joins there."""
    targets = dict(mgr.dirs)
    subs = parse(args)
    if "" in subs:
        return {name: inside(base, subs[""], subs[""]) for name, base in targets.items()}
    if subs and mgr.v2:
        raise CgroupError(
            f"--cgroup {args[0]!r}: cgroup v2 has one hierarchy: give the sub-cgroup path alone, without a controller"
        )
    chosen: dict[str, str] = {}
    for controller, sub in subs.items():
        name = _hierarchy_of(mgr, controller)
        if name is None:
            raise CgroupError(
                f"--cgroup {controller}:{sub}: unknown controller {controller} "
                f"(this container's hierarchies: {', '.join(mgr.dirs)})"
            )
        if chosen.get(name, sub) != sub:
            raise CgroupError(
                f"--cgroup {controller}:{sub}: {controller} shares the {name} hierarchy with a controller given "
                f"another path ({chosen[name]})"
            )
        chosen[name] = sub
        targets[name] = inside(mgr.dirs[name], sub, f"{controller}:{sub}")
    return targets


def _hierarchy_of(mgr: Manager, controller: str) -> str | None:
    for name in mgr.dirs:
        if controller == name or controller in name.split(","):
            return name
    return None
