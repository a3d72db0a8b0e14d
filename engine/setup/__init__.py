"""Setup stages the container init runs before exec: rootfs, mounts, devices, paths."""
