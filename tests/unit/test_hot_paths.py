"""engine/paths.py: os.path's abspath and exists without os, for the hot commands. They must answer as os.path does
(--root and --log go through absolute(); delete asks exists())."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from engine.paths import absolute, exists

COMPONENTS = st.sampled_from(["", ".", "..", "run", "engine", "a b", ".hidden", "x..", "..."])


@given(st.lists(COMPONENTS, max_size=6), st.booleans())
def test_absolute_is_abspath(parts: list[str], rooted: bool) -> None:
    path = ("/" if rooted else "") + "/".join(parts)
    if path:
        assert absolute(path) == posixpath.abspath(path), path


def test_absolute_keeps_a_normal_path_and_normalizes_the_rest() -> None:
    for path in ("/", "/run/engine", "/tmp/x/log.json", "/a/.hidden/b"):
        assert absolute(path) == path
    assert absolute("/run//engine/") == "/run/engine"
    assert absolute("//run/../x/.") == "//x"  # POSIX keeps a leading "//", as posixpath does
    assert absolute("log.json") == os.path.join(os.getcwd(), "log.json")


def test_exists_is_os_path_exists(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    for name in ("file", "dangling", "link", "nowhere", "file/below", "nul\0"):
        assert exists(str(tmp_path / name)) == os.path.exists(str(tmp_path / name)), name
