"""One container's record: what state.json holds, and the public state `engine state` prints."""

import time

from engine import SPEC_VERSION
from state import process
from state.rules import ALIVE, CREATED, CREATING, PAUSED, RUNNING, STOPPED

TYPE_CHECKING = False  # `import typing` costs ~3 ms on every command; annotations here are strings anyway
if TYPE_CHECKING:
    from typing import Any


def now_rfc3339() -> str:
    # time, not datetime: `engine state` and `kill` import this module, and every millisecond counts there.
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1_000_000):06d}Z"


# Every field of state.json and its default (a callable for a fresh mutable or a timestamp). A plain class,
# not a dataclass: `import dataclasses` pulls in inspect, ~15 ms on every `engine state`.
_FIELDS: "dict[str, Any]" = {
    "id": None,
    "bundle": None,
    "status": CREATING,
    "pid": 0,
    "pid_start_time": None,  # the init's start time (/proc/<pid>/stat field 22): pid reuse cannot fool us
    "rootfs": "",
    "annotations": dict,
    "created": now_rfc3339,
    "started": None,
    "finished": None,
    "exit_status": None,
    # The `engine create` process while status is creating: if it died mid-create, the container is stopped.
    "creator_pid": 0,
    "creator_start_time": None,
    # `engine run` waits for its container itself (it knows the exit status); the monitor leaves it alone.
    "reaper_pid": 0,
    "reaper_start_time": None,
    "sync_socket": None,
    "cgroups": dict,  # the cgroup manager's to_json()
    "owner": "",
}


_STR, _INT, _NONE = (str,), (int,), (type(None),)
_TYPES: dict[str, tuple[type, ...]] = {
    "id": _STR,
    "bundle": _STR + _NONE,
    "status": _STR,
    "pid": _INT,
    "pid_start_time": _INT + _NONE,
    "rootfs": _STR,
    "annotations": (dict,),
    "created": _STR,
    "started": _STR + _NONE,
    "finished": _STR + _NONE,
    "exit_status": _INT + _NONE,
    "creator_pid": _INT,
    "creator_start_time": _INT + _NONE,
    "reaper_pid": _INT,
    "reaper_start_time": _INT + _NONE,
    "sync_socket": _STR + _NONE,
    "cgroups": (dict,),
    "owner": _STR,
}
_STATUSES = (CREATING, CREATED, RUNNING, PAUSED, STOPPED)


class ContainerRecord:
    __slots__ = tuple(_FIELDS)

    id: str
    bundle: str
    status: str
    pid: int
    pid_start_time: int | None
    rootfs: str
    annotations: dict[str, str]
    created: str
    started: str | None
    finished: str | None
    exit_status: int | None
    creator_pid: int
    creator_start_time: int | None
    reaper_pid: int
    reaper_start_time: int | None
    sync_socket: str | None
    cgroups: "dict[str, Any]"
    owner: str

    def __init__(self, **values: "Any") -> None:
        for name, default in _FIELDS.items():
            if name in values:
                setattr(self, name, values.pop(name))
            elif callable(default):
                setattr(self, name, default())
            elif default is None and name in ("id", "bundle"):
                raise TypeError(f"ContainerRecord needs {name}")
            else:
                setattr(self, name, default)
        if values:
            raise TypeError(f"unknown ContainerRecord fields: {sorted(values)}")

    def __repr__(self) -> str:
        return f"ContainerRecord(id={self.id!r}, status={self.status!r}, pid={self.pid})"

    def to_json(self) -> "dict[str, Any]":
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_json(cls, data: "dict[str, Any]") -> "ContainerRecord":
        """A record from state.json, its fields checked: a corrupt or hand-edited file is a ValueError naming the
        field (one line for the user), never a TypeError deep in a command."""
        if not isinstance(data, dict):
            raise ValueError(f"expected an object, got {type(data).__name__}")
        values = {k: v for k, v in data.items() if k in _FIELDS}
        for name, value in values.items():
            allowed = _TYPES[name]
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                raise ValueError(f"{name}: {type(value).__name__} is not a valid value")
        status = values.get("status", CREATING)
        if status not in _STATUSES:
            raise ValueError(f"status: {status!r} is not a status")
        # Without the start time a live pid cannot be told from a reused one: a record that would need it to say
        # whether the container lives is corrupt, not "any process with that pid is ours".
        if status in ALIVE and values.get("pid_start_time") is None:
            raise ValueError(f"pid_start_time: missing for a {status} container")
        if status == CREATING and values.get("creator_start_time") is None:
            raise ValueError("creator_start_time: missing for a creating container")
        return cls(**values)

    def observed_status(self) -> str:
        """The status as it truly is now: a container whose init (or creator) died is stopped."""
        if self.status in ALIVE and not process.is_alive(self.pid, self.pid_start_time):
            return STOPPED
        if self.status == CREATING and not process.is_alive(self.creator_pid, self.creator_start_time):
            return STOPPED
        return self.status

    def public_state(self, status: str | None = None) -> "dict[str, Any]":
        """runtime.md "State", plus runc's extra fields (rootfs, created, owner) that tools read."""
        status = status or self.observed_status()
        state: dict[str, Any] = {
            "ociVersion": SPEC_VERSION,
            "id": self.id,
            "pid": self.pid if status in ALIVE or status == CREATING else 0,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        }
        if self.annotations:
            state["annotations"] = self.annotations
        return state

    def event_state(self, status: str | None = None) -> "dict[str, Any]":
        """The public state plus the timestamps and exit status supervisors want (sync socket, events)."""
        state = self.public_state(status)
        state["createdAt"] = self.created
        for key, value in (
            ("startedAt", self.started),
            ("finishedAt", self.finished),
            ("exitStatus", self.exit_status),
        ):
            if value is not None:
                state[key] = value
        return state
