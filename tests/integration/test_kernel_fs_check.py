"""After mounting proc or sysfs the engine checks the destination really is that filesystem (issue: "procfs/sysfs
targets are checked to really be those filesystems after mounting")."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from engine.setup.rootfs import MountError, check_kernel_fs


def test_a_tmpfs_where_proc_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "sys").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "fake", str(tmp_path / "proc")], check=True)
    try:
        root_fd = os.open(tmp_path, os.O_PATH)
        try:
            with pytest.raises(MountError, match="not proc"):
                check_kernel_fs(root_fd, "/proc", "proc")
            subprocess.run(["mount", "-t", "sysfs", "sysfs", str(tmp_path / "sys")], check=True)
            check_kernel_fs(root_fd, "/sys", "sysfs")  # the real thing passes
        finally:
            os.close(root_fd)
    finally:
        subprocess.run(["umount", str(tmp_path / "proc")], check=False)
        subprocess.run(["umount", str(tmp_path / "sys")], check=False)
