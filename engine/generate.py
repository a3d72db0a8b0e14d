"""Regenerate every compiled form of a definition: `python -m engine.generate` (or `--check`: exit 1 if stale).

    engine/spec/compiled.py      the config.json validator, from the pydantic models (engine/spec/codegen.py)
    engine/spec/typed.py         TypedDicts of the validated documents, from the same models
    state/lifecycle_table.py     the lifecycle table, from the transitions machine (state/lifecycle_codegen.py)
    engine/cli_table.py          the fast command-line parser's table, from argparse's (engine/cli_codegen.py)

Each is committed, so that no install needs pydantic, transitions or argparse to build it, and each has a
test that fails while it differs from what its definition gives now.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def targets() -> dict[Path, Callable[[], str]]:
    from engine import cli_codegen
    from engine.spec import codegen
    from state import lifecycle_codegen

    return {
        codegen.OUTPUT: codegen.generate,
        codegen.TYPED_OUTPUT: codegen.render_typed,
        Path(lifecycle_codegen.TABLE_FILE): lifecycle_codegen.render_table,
        cli_codegen.TABLE_FILE: cli_codegen.render_table,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say which files are stale (exit 1 if any)")
    args = parser.parse_args(argv)
    stale = []
    for path, render in targets().items():
        text = render()
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    if args.check and stale:
        print("stale (run python -m engine.generate): " + ", ".join(str(p.relative_to(REPO)) for p in stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
