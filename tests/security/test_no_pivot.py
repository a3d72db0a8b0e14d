"""--no-pivot (issue #8): chroot instead of pivot_root leaves the host's mounts in the container's mount namespace,
under its root. The kernel lets a process that makes its own user and mount namespaces mount a fresh procfs only
while a fully visible one exists in its mount namespace: the host's /proc was one, so a container process could
get a procfs without the container's masks. runc detaches them before chroot (msMoveRoot); so must engine."""

from __future__ import annotations

from tests.security.conftest import Runtime

# As a non-root user: the container's root lacks CAP_SETFCAP, without which the kernel refuses a user namespace
# that maps uid 0 of the host; uid 1000 maps itself freely, and is root in its new namespaces.
ATTEMPT = "unshare -mrpf sh -c 'mount -t proc proc /mnt && echo MOUNTED; mount -t sysfs sysfs /mnt && echo SYSFS'"


def _as_user(config: dict) -> None:
    config["process"]["user"] = {"uid": 1000, "gid": 1000}


def test_no_pivot_leaves_no_full_procfs_to_mount_again(runtime: Runtime) -> None:
    script = f"{ATTEMPT} 2>&1; echo done"
    result = runtime.run(runtime.config(["sh", "-c", script], edit=_as_user), "--no-pivot")
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("done"), result.stdout
    assert "MOUNTED" not in result.stdout and "SYSFS" not in result.stdout, result.stdout
