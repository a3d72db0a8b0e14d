"""orjson or the stdlib's C JSON (state/jsonio.py) for each use: `.venv/bin/python bench/json_choice.py`.

A command reads one small document (state, start, kill, delete: a state.json; create: a config.json) or many
(list: one state.json per container; events and the monitor: every change, for as long as they run). orjson
parses and writes faster, but importing it costs more than parsing a handful of documents with _json (it
imports dataclasses, uuid, enum... at init). This measures both sides in a fresh interpreter started as the
engine command starts Python (-S -I), and says from how many documents on orjson pays for its import.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import sysconfig  # noqa: E402

SITE = sysconfig.get_paths()["purelib"]
PATHS = f"import sys; sys.path += [{str(REPO)!r}, {SITE!r}]"
IMPORTS = {
    "nothing": "pass",
    "state.jsonio (_json)": "from state import jsonio",
    "json": "import json",
    "orjson": "import orjson",
}
RECORD = {
    "id": "c1234567890",
    "bundle": "/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1234567890",
    "status": "running",
    "pid": 123456,
    "pid_start_time": 9876543,
    "rootfs": "/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1234567890/rootfs",
    "annotations": {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "abc"},
    "created": "2026-12-01T10:00:00.000000Z",
    "started": "2026-12-01T10:00:00.100000Z",
    "finished": None,
    "exit_status": None,
    "creator_pid": 0,
    "creator_start_time": None,
    "reaper_pid": 0,
    "reaper_start_time": None,
    "sync_socket": None,
    "cgroups": {"v1": {"cpu": "/sys/fs/cgroup/cpu/k8s/c1234567890", "memory": "/sys/fs/cgroup/memory/k8s/c123"}},
    "owner": "",
}


def import_costs(rounds: int) -> dict[str, float]:
    """Median wall time of `python -S -I -c <import>` per import, interleaved (seconds)."""
    samples: dict[str, list[float]] = {name: [] for name in IMPORTS}
    for i in range(rounds):
        names = list(IMPORTS) if i % 2 == 0 else list(IMPORTS)[::-1]
        for name in names:
            begin = time.perf_counter()
            subprocess.run([sys.executable, "-S", "-I", "-c", f"{PATHS}; {IMPORTS[name]}"], check=True)
            samples[name].append(time.perf_counter() - begin)
    return {name: statistics.median(values) for name, values in samples.items()}


def per_document(count: int) -> dict[str, tuple[float, float]]:
    """(loads, dumps) seconds per document, for a state.json record and for a default config.json."""
    import json

    import orjson

    from engine.spec.default import default_config
    from state import jsonio

    results = {}
    for label, doc in (("state.json", RECORD), ("config.json", default_config(["sh"], terminal=False))):
        text = jsonio.dumps(doc).encode()
        for name, loads, dumps in (
            ("jsonio", jsonio.loads, jsonio.dumps),
            ("json", json.loads, json.dumps),
            ("orjson", orjson.loads, orjson.dumps),
        ):
            times = []
            for _ in range(5):
                begin = time.perf_counter()
                for _ in range(count):
                    loads(text)
                middle = time.perf_counter()
                for _ in range(count):
                    dumps(doc)
                times.append(((middle - begin) / count, (time.perf_counter() - middle) / count))
            results[f"{label} {name}"] = (min(t[0] for t in times), min(t[1] for t in times))
    return results


def main() -> int:
    costs = import_costs(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
    docs = per_document(2000)
    base = costs["nothing"]
    print("| import (python -S -I) | median ms | above bare |")
    print("|---|--:|--:|")
    for name, seconds in costs.items():
        print(f"| {name} | {seconds * 1000:.1f} | {(seconds - base) * 1000:+.1f} |")
    print("\n| document | parser | loads µs | dumps µs |")
    print("|---|---|--:|--:|")
    for key, (load, dump) in docs.items():
        label, name = key.split(" ")
        print(f"| {label} | {name} | {load * 1e6:.1f} | {dump * 1e6:.1f} |")
    extra = costs["orjson"] - costs["state.jsonio (_json)"]
    saved = docs["state.json jsonio"][0] - docs["state.json orjson"][0]
    if saved > 0:
        print(f"\norjson's import costs {extra * 1000:.1f} ms more than _json's; it saves {saved * 1e6:.1f} µs per")
        print(f"state.json read: it pays from ~{extra / saved:.0f} documents on (a `list` of that many containers).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
