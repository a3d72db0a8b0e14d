"""What the engine leaves resident per running container: the exit monitor's PSS with N running containers.

Usage (root): .venv/bin/python bench/monitor_memory.py [--containers 100]

Creates N containers running `sleep`, waits until the root's monitor watches them all, reads the monitor's
PSS from /proc/<pid>/smaps_rollup, and also measures how fast a container's exit reaches state.json.
Everything it made is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.linux.syscalls import pidfd_open  # noqa: E402
from engine.spec.default import default_config  # noqa: E402

ENGINE = str(Path(sys.executable).with_name("engine"))


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError("no Pss line")


def monitor_pid(root: str) -> int | None:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if b"state.monitor" in cmdline and root.encode() in cmdline:
                return int(name)
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="engine-monitor-bench-"))
    root = str(work / "root")
    bundle = work / "bundle"
    bundle.mkdir()
    config = default_config(["sleep", "600"], terminal=False)
    config["root"] = {"path": str(REPO / ".cache" / "rootfs"), "readonly": True}
    (bundle / "config.json").write_text(json.dumps(config))
    ids = [f"m{i}" for i in range(args.containers)]
    try:
        for cid in ids:
            subprocess.run(
                [ENGINE, "--root", root, "run", "--detach", "--bundle", str(bundle), cid],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        time.sleep(1.0)
        monitor = monitor_pid(root)
        assert monitor is not None, "no monitor running"
        watched = len([f for f in os.listdir(f"/proc/{monitor}/fd")])
        pss = pss_kib(monitor)
        print(
            f"{args.containers} running containers: monitor pid {monitor}, {watched} open fds, "
            f"PSS {pss / 1024:.1f} MiB = {pss / args.containers:.0f} KiB per container"
        )
        latencies = []
        for cid in ids[:20]:
            state = json.loads(
                subprocess.run([ENGINE, "--root", root, "state", cid], capture_output=True, check=True).stdout
            )
            fd = pidfd_open(state["pid"])
            os.kill(state["pid"], signal.SIGKILL)
            select.select([fd], [], [], 5)
            exited = time.monotonic()
            os.close(fd)
            path = Path(root, cid, "state.json")
            while json.loads(path.read_text())["status"] != "stopped":
                time.sleep(0.001)
            latencies.append((time.monotonic() - exited) * 1000)
        latencies.sort()
        print(
            f"exit -> state.json stopped: median {latencies[len(latencies) // 2]:.1f} ms, "
            f"max {latencies[-1]:.1f} ms over {len(latencies)} exits"
        )
    finally:
        for cid in ids:
            subprocess.run(
                [ENGINE, "--root", root, "delete", "--force", cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
