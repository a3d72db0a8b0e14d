"""What `engine create` hands the container's init: everything resolved before the fork (engine/init.py runs it).

Apart from engine/init.py so that `engine create`'s own process, which builds the plan, does not import the init's
code: the forked intermediate child imports that (engine.create._launch), while create waits on the kernel to
put it into the cgroups.
"""

from __future__ import annotations

from engine import lsm
from engine.record import field, record

TYPE_CHECKING = False  # typing costs ~2-5 ms at import; annotations here are strings

if TYPE_CHECKING:
    from engine.hookpoints import Hooks
    from engine.setup.cgroupfs import Hierarchy
    from engine.spec.typed import Spec, TimeOffsets

_NO_TIME_OFFSETS: TimeOffsets = {}


@record
class InitPlan:
    """Everything the init needs, resolved by `engine create` before forking."""

    container_id: str
    bundle: str
    rootfs: str
    config: Spec  # config.json as validated (JSON shape, camelCase keys)
    fifo_path: str
    no_pivot: bool = False
    preserve_fds: int = 0
    namespace_flags: int = 0
    namespace_paths: list[tuple[str, str]] = field(default_factory=list)  # (type, path) to setns into
    hooks: Hooks = field(default_factory=dict)  # config's + drop-ins', by stage
    time_offsets: TimeOffsets = field(default_factory=lambda: _NO_TIME_OFFSETS.copy())
    fifo_fd: int = -1  # O_PATH fd on the exec fifo, opened by `engine create` (the init may not reach the path)
    bind_source_fds: dict[int, int] = field(default_factory=dict)  # mounts[i] -> O_PATH fd on its source
    labels: lsm.Labels = field(default_factory=lsm.Labels)  # AppArmor/SELinux, as the host can apply them
    # The intermediate's cgroup in each hierarchy (engine.setup.cgroupfs.host_hierarchies), read just before it
    # unshares a new cgroup namespace: that namespace's root. The init binds these for a "cgroup" mount instead of
    # mounting each v1 hierarchy fresh, which costs the kernel a walk of every cgroup on the host (setup_mounts).
    cgroup_hierarchies: list[Hierarchy] | None = None
