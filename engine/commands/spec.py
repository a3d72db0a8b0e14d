"""engine spec [--bundle DIR] [--rootless]: write a default config.json, as `runc spec` does."""

from __future__ import annotations

import json
import os

from engine.cli import Context
from engine.errors import EngineError
from engine.spec.default import default_config

TYPE_CHECKING = False  # argparse only for the annotation: hot commands are parsed by hand
if TYPE_CHECKING:
    import argparse


def run(ctx: Context, args: argparse.Namespace) -> int:
    config = default_config()
    if args.rootless:
        from engine.rootless.spec import to_rootless

        to_rootless(config, os.geteuid(), os.getegid())
    path = os.path.join(args.bundle, "config.json")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise EngineError(f"spec: {path} exists already: remove it first") from None
    except OSError as err:
        raise EngineError(f"spec: {path}: {err.strerror}") from None
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    return 0
