"""engine events --follow [id]: every state change under --root as one JSON line each (state/events.py).

For supervisors that do not listen on a sync socket. Each line is {"type": "state", "id", "status", "time",
"state": <the container's state as on the sync socket>} or {"type": "deleted", "id"}.
"""

from __future__ import annotations

import contextlib
import json
import sys

from engine.cli import Context
from state.events import follow
from state.record import ContainerRecord

TYPE_CHECKING = False  # argparse only for the annotation: hot commands are parsed by hand
if TYPE_CHECKING:
    import argparse


def run(ctx: Context, args: argparse.Namespace) -> int:
    try:
        for event in follow(ctx.root, args.container_id):
            if "state" in event and isinstance(event["state"], dict):
                with contextlib.suppress(ValueError):  # a corrupt state.json: passed on as it is
                    event["state"] = ContainerRecord.from_json(event["state"]).event_state(event.get("status"))
            sys.stdout.write(json.dumps(event) + "\n")
            sys.stdout.flush()
    except BrokenPipeError:
        return 0
    return 0
