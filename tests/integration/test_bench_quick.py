"""bench/run.py --quick runs end to end (every row, scale rows included, small counts): the bench keeps working.

Its numbers mean little at these counts on a busy CI machine; the table's shape and the clean-up are checked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_bench(tmp_path: Path) -> None:
    raw = tmp_path / "raw.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--raw", str(raw)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for label in ("`run` of /bin/true", "`create`", "create+state+start+kill+delete", "`state`", "`start`"):
        assert f"| {label}" in out
    assert "| hot command | engine / interpreter |" in out
    assert "running containers" in out and "sequential `run -d`" in out and "concurrent" in out
    assert "Targets of issue #11" in out
    assert "note: containers left behind" not in out and "processes still alive" not in out
    assert raw.exists()
