"""One container's record: what state.json holds, and the public state `engine state` prints."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from engine import SPEC_VERSION
from state import process
from state.rules import ALIVE, CREATING, STOPPED


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclasses.dataclass
class ContainerRecord:
    id: str
    bundle: str
    status: str = CREATING
    pid: int = 0
    pid_start_time: int | None = None
    rootfs: str = ""
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    created: str = dataclasses.field(default_factory=now_rfc3339)
    started: str | None = None
    finished: str | None = None
    exit_status: int | None = None
    # The `engine create` process while status is creating: if it died mid-create, the container is stopped.
    creator_pid: int = 0
    creator_start_time: int | None = None
    # `engine run` waits for its container itself (it knows the exit status); the monitor leaves it alone.
    reaper_pid: int = 0
    reaper_start_time: int | None = None
    sync_socket: str | None = None
    cgroups: dict[str, Any] = dataclasses.field(default_factory=dict)  # the cgroup manager's to_json()
    owner: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def observed_status(self) -> str:
        """The status as it truly is now: a container whose init (or creator) died is stopped."""
        if self.status in ALIVE and not process.is_alive(self.pid, self.pid_start_time):
            return STOPPED
        if self.status == CREATING and not process.is_alive(self.creator_pid, self.creator_start_time):
            return STOPPED
        return self.status

    def public_state(self, status: str | None = None) -> dict[str, Any]:
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

    def event_state(self, status: str | None = None) -> dict[str, Any]:
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
