"""Local images for the CRI test, no registry: OCI image-layout archives that `ctr images import` reads.

- the pause image: one static binary compiled from tests/cri/pause.c (gcc -static), the pod sandbox's process;
- the app image: the busybox test rootfs (tests/make-rootfs.sh).

Each archive is one uncompressed layer, an image config and a manifest, named by the index's
io.containerd.image.name annotation (the name containerd's config gives as sandbox_image, or the one a
CreateContainer asks for). They are cached under .cache/cri/, keyed by a hash of what went into them, so a
second run only imports.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import subprocess
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAUSE_SOURCE = HERE / "pause.c"

_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x"}


def architecture() -> str:
    machine = platform.machine()
    return _ARCHITECTURES.get(machine, machine)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Same bytes for the same tree: the layer's digest (and so the cache key's meaning) does not drift.
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def layer_from_tree(root: Path) -> bytes:
    """An uncompressed layer tar of the directory's contents, paths relative to it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(root)):
            tar.add(root / name, arcname=name, filter=_normalized)
    return buffer.getvalue()


def layer_from_files(files: dict[str, tuple[bytes, int]]) -> bytes:
    """An uncompressed layer tar of {path: (contents, mode)}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (data, mode) in sorted(files.items()):
            info = _normalized(tarfile.TarInfo(name))
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_oci_archive(path: Path, name: str, layer: bytes, process: dict) -> None:
    """An OCI image-layout tar with one image, `name`, whose config carries `process` (Entrypoint, Cmd...)."""
    arch = architecture()
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], **process},
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(layer), "size": len(layer)}
            ],
        }
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": _digest(manifest),
                    "size": len(manifest),
                    "platform": {"architecture": arch, "os": "linux"},
                    "annotations": {"io.containerd.image.name": name},
                }
            ],
        }
    ).encode()
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": index}
    for blob in (layer, config, manifest):
        files["blobs/sha256/" + hashlib.sha256(blob).hexdigest()] = blob
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # two runs building at once each write their own
    with tarfile.open(tmp, "w") as tar:
        for member, data in files.items():
            info = _normalized(tarfile.TarInfo(member))
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    tmp.rename(path)


def _tree_key(root: Path) -> str:
    """What a layer of the tree depends on: every entry's path, mode, size and link target."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath, name)
            st = p.lstat()
            target = os.readlink(p) if p.is_symlink() else ""
            h.update(f"{p.relative_to(root)}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0{target}\n".encode())
    return h.hexdigest()[:16]


def pause_archive(cache: Path, name: str) -> Path:
    """The pause image: tests/cri/pause.c compiled static (gcc), as /pause, the image's entrypoint."""
    source = PAUSE_SOURCE.read_bytes()
    key = hashlib.sha256(source + name.encode()).hexdigest()[:16]
    archive = cache / f"pause-{key}.tar"
    if archive.exists():
        return archive
    cache.mkdir(parents=True, exist_ok=True)
    binary = cache / f"pause-{key}.{os.getpid()}"
    subprocess.run(
        ["gcc", "-static", "-Os", "-s", "-Wall", "-Werror", "-o", str(binary), str(PAUSE_SOURCE)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    layer = layer_from_files({"pause": (binary.read_bytes(), 0o755)})
    write_oci_archive(archive, name, layer, {"Entrypoint": ["/pause"]})
    binary.unlink()
    return archive


def busybox_archive(cache: Path, name: str, rootfs: Path) -> Path:
    """The app image: the busybox test rootfs, `sh` by default."""
    key = hashlib.sha256((_tree_key(rootfs) + name).encode()).hexdigest()[:16]
    archive = cache / f"busybox-{key}.tar"
    if archive.exists():
        return archive
    cache.mkdir(parents=True, exist_ok=True)
    write_oci_archive(archive, name, layer_from_tree(rootfs), {"Cmd": ["sh"]})
    return archive
