#!/usr/bin/env bash
# Set up engine on a fresh Debian 12 machine, as root: Debian packages, a virtualenv with the project and its
# test extra, the busybox test rootfs, an example bundle, and one example container run.
set -euo pipefail
cd "$(dirname "$0")"

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# busybox-static: the test rootfs; runc: the reference runtime the tests and benchmark compare against;
# libseccomp2: the seccomp library engine loads; iproute2: test network namespaces; python3-venv: the venv;
# podman + conmon and containerd: the supervisors that drive engine in the integration tests; procps: the ps
# that `engine ps` runs, as runc's does (not in minimal Debian images); containernetworking-plugins (the pod
# network of the CRI test) and gcc + libc6-dev (its static pause binary); uidmap: newuidmap/newgidmap, which map
# a user's subordinate ids into a rootless container's user namespace (and rootless podman's own).
apt-get install -y -qq busybox-static runc libseccomp2 iproute2 python3-venv podman conmon containerd procps \
    containernetworking-plugins gcc libc6-dev uidmap >/dev/null

# The venv is built on Debian's own interpreter, not whichever python3 comes first on PATH (here a pyenv build):
# Debian links libpython into /usr/bin/python3.11 and builds it with PGO and LTO, so it starts ~15% faster than a
# --enable-shared build and runs engine's own code faster too; every command pays both (README, performance).
python=/usr/bin/python3
if [ "$(readlink -f .venv/bin/python3 2>/dev/null)" != "$(readlink -f "$python")" ]; then
    rm -rf .venv
fi
"$python" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat  # a .pth: no import hook at start-up

# The `engine` command: Python without site (-S) and isolated (-I), with the paths site would have added given
# here instead: this checkout (the editable install adds it through a .pth file, which -S skips) and the venv's
# site-packages. Site costs every command a few ms (bin/engine, what `pip install .` installs, explains).
site_packages=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cat > .venv/bin/engine <<WRAPPER
#!$PWD/.venv/bin/python3 -SI
import sys

sys.path += ["$PWD", "$site_packages"]
try:  # the hot commands' modules from one file, if this interpreter built it: engine/hotload.py (its loader in it)
    with open(f"$PWD/engine/__pycache__/hot.{sys.implementation.cache_tag}.bundle", "rb") as bundle:
        hot = bundle.read()
    if hot[:4] == sys.modules["_frozen_importlib_external"].MAGIC_NUMBER:
        header = sys.modules["marshal"].loads(memoryview(hot)[8:])
        exec(header[0], {"__name__": "engine.hotload", "BUNDLE": (hot, header)})
except OSError:
    pass
from engine.cli import exit_quickly, main

exit_quickly(main())
WRAPPER
chmod 0755 .venv/bin/engine

# Every command pays Python's start-up: compile the sources once, so that even with PYTHONDONTWRITEBYTECODE
# set (as on this machine) no import recompiles them.
.venv/bin/python -m compileall -q engine state hooks >/dev/null
# ...and the hot commands' modules into one file, which the launcher above reads (engine/hotload.py says why).
.venv/bin/python -m engine.hotload_codegen >/dev/null

tests/make-rootfs.sh .cache/rootfs >/dev/null

# An example bundle: `engine spec`'s default config, pointed at the busybox rootfs, without a terminal.
rm -rf .cache/example && mkdir -p .cache/example
.venv/bin/engine spec --bundle .cache/example
.venv/bin/python - <<'PY'
import json
path = ".cache/example/config.json"
config = json.load(open(path))
config["root"]["path"] = "../rootfs"
config["process"]["terminal"] = False
config["process"]["args"] = ["sh", "-c", "echo hello from $(hostname), pid $$ in its own namespaces"]
json.dump(config, open(path, "w"), indent=2)
PY
.venv/bin/engine run --bundle .cache/example "example-$$"
