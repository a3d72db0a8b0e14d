"""engine features: the features.json document (features.md), valid against features-schema.json."""

from __future__ import annotations

import json

from engine.cli import Context
from engine.spec.features import features_document

TYPE_CHECKING = False  # argparse only for the annotation: hot commands are parsed by hand
if TYPE_CHECKING:
    import argparse


def run(ctx: Context, args: argparse.Namespace) -> int:
    print(json.dumps(features_document(), indent=2))
    return 0
