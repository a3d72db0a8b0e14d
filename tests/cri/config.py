"""containerd's config for the CRI test, made from docs/kubernetes.md: one source for the doc and the test.

The doc's ```toml block is what a cluster admin adds to /etc/containerd/config.toml; its ```yaml block with
`kind: RuntimeClass` is what they apply to the cluster. The test takes both as they are and changes only:

- the values that name host paths or images (each must occur exactly once in the block, so that a doc edit
  that renames or drops one fails here instead of silently testing something else);
- SystemdCgroup, set by the cgroup driver under test;
- additions the doc must not carry: private top-level paths (root, state, socket, the opt plugin) and this
  host's needs (see docs/kubernetes.md "What the test checks").
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md"
CRI_TABLE = '[plugins."io.containerd.grpc.v1.cri"]'

# What the doc says, as the admin's values; the test puts its own in their place.
DOC_SANDBOX_IMAGE = 'sandbox_image = "registry.k8s.io/pause:3.6"'
DOC_CNI_CONF_DIR = 'conf_dir = "/etc/cni/net.d"'
DOC_BINARY = 'BinaryName = "/usr/local/bin/engine"'
DOC_ROOT = 'Root = "/run/engine"'
DOC_SYSTEMD = "SystemdCgroup = false"


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def doc_containerd_snippet(doc: Path = DOC) -> str:
    blocks = fenced_blocks(doc.read_text(), "toml")
    assert len(blocks) == 1, f"{doc}: expected one ```toml block (containerd's config), found {len(blocks)}"
    return blocks[0]


def doc_runtime_handler(doc: Path = DOC) -> str:
    """The `handler` of the doc's RuntimeClass manifest (what the kubelet passes as runtime_handler)."""
    for block in fenced_blocks(doc.read_text(), "yaml"):
        if re.search(r"^kind: RuntimeClass$", block, flags=re.MULTILINE):
            assert re.search(r"^apiVersion: node\.k8s\.io/v1$", block, flags=re.MULTILINE), block
            match = re.search(r"^handler: (\S+)$", block, flags=re.MULTILINE)
            assert match, f"{doc}: the RuntimeClass has no handler"
            return match.group(1)
    raise AssertionError(f"{doc}: no ```yaml block with kind: RuntimeClass")


def _replace_once(text: str, old: str, new: str) -> str:
    count = text.count(old)
    assert count == 1, f"{DOC}: expected `{old}` once in the containerd config block, found it {count} times"
    return text.replace(old, new)


def containerd_config(
    *,
    work: Path,
    socket: Path,
    engine: str,
    engine_root: Path,
    cni_conf_dir: Path,
    sandbox_image: str,
    systemd_cgroup: bool,
) -> tuple[str, dict[str, Any]]:
    """(config.toml text, its parsed form) for a private containerd running the doc's configuration."""
    snippet = doc_containerd_snippet()
    assert snippet.startswith("version = 2\n"), "the doc's containerd config must start with `version = 2`"
    body = snippet.removeprefix("version = 2\n")
    body = _replace_once(body, DOC_SANDBOX_IMAGE, f'sandbox_image = "{sandbox_image}"')
    body = _replace_once(body, DOC_CNI_CONF_DIR, f'conf_dir = "{cni_conf_dir}"')
    body = _replace_once(body, DOC_BINARY, f'BinaryName = "{engine}"')
    body = _replace_once(body, DOC_ROOT, f'Root = "{engine_root}"')
    body = _replace_once(body, DOC_SYSTEMD, f"SystemdCgroup = {'true' if systemd_cgroup else 'false'}")
    # This host only: root has no CAP_SYS_RESOURCE (the sandbox's oom_score_adj -998 would be refused), and
    # the pod's netns is mounted under our own state dir instead of the host's /run/netns.
    host_only = "  restrict_oom_score_adj = true\n  netns_mounts_under_state_dir = true\n"
    body = _replace_once(body, CRI_TABLE + "\n", CRI_TABLE + "\n" + host_only)
    header = (
        "version = 2\n"
        f'root = "{work}/root"\n'
        f'state = "{work}/state"\n'
        "[grpc]\n"
        f'  address = "{socket}"\n'
        '[plugins."io.containerd.internal.v1.opt"]\n'
        f'  path = "{work}/opt"\n'
    )
    text = header + body
    return text, tomllib.loads(text)
