"""engine ps [--format table|json] <id> [ps options]: the container's processes.

As runc: the table is the host's `ps` output (procps's, `ps -ef` unless options follow the id), header first,
keeping only the lines whose PID column is one of the container's processes. `--format json` prints the list
of pids (containerd's shim reads it) and ignores ps options. A `--` right after the id is dropped (runc
passes it on, and procps's ps refuses it as a "garbage option").
"""

from __future__ import annotations

from engine.cli import Context
from engine.container import container_pids
from engine.errors import EngineError
from state import jsonio
from state.rules import ALIVE
from state.store import Store

TYPE_CHECKING = False  # argparse only for the annotation: the hot path parses argv by hand
if TYPE_CHECKING:
    import argparse


def run(ctx: Context, args: argparse.Namespace) -> int:
    record = Store(ctx.root).load(args.container_id)
    pids = container_pids(record) if record.observed_status() in ALIVE else []
    if args.format == "json":
        print(jsonio.dumps(pids))
        return 0
    ps_args = list(args.ps_args or [])
    if ps_args[:1] == ["--"]:
        ps_args = ps_args[1:]
    for line in filter_table(run_ps(ps_args or ["-ef"]), set(pids)):
        print(line)
    return 0


def run_ps(ps_args: list[str]) -> str:
    import subprocess  # ps is not a hot command: subprocess's import cost is fine here

    try:
        result = subprocess.run(["ps", *ps_args], capture_output=True, text=True, errors="replace", timeout=60)
    except FileNotFoundError:
        raise EngineError("ps: no ps on this host's PATH (install procps)") from None
    except subprocess.TimeoutExpired:
        raise EngineError(f"ps {' '.join(ps_args)}: did not finish within 60 s") from None
    if result.returncode != 0:
        output = " ".join((result.stderr + result.stdout).split())
        raise EngineError(f"ps {' '.join(ps_args)}: exit status {result.returncode}: {output}")
    return result.stdout


def filter_table(output: str, pids: set[int]) -> list[str]:
    """The header, then the lines of ps's output whose PID column names one of `pids`."""
    lines = output.splitlines()
    if not lines:
        raise EngineError("ps: printed nothing")
    header = lines[0].split()
    if "PID" not in header:
        raise EngineError("ps: its output has no PID column (with -o, include pid)")
    column = header.index("PID")
    kept = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) <= column:
            continue
        try:
            pid = int(fields[column])
        except ValueError:
            raise EngineError(f"ps: cannot read a pid in {line.strip()!r}") from None
        if pid in pids:
            kept.append(line)
    return kept
