# Sourced by tests/cgroup2-guest/run.sh and tests/systemd-guest/run.sh (with REPO and GUEST set): the host
# checks both qemu guests need, and the part of the initrd they share. Sets KERNEL, KVER (Debian's newest
# non-cloud kernel), QEMU, BUSYBOX and WORK, a scratch directory removed on exit, holding results/ and initrd/
# with a static busybox and the 9p and overlay modules of that kernel.

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root" >&2; exit 2; }
KERNEL=$(ls /boot/vmlinuz-*-amd64 2>/dev/null | grep -v cloud | sort -V | tail -1 || true)
[ -n "$KERNEL" ] || { echo "run.sh: no /boot/vmlinuz-*-amd64: apt-get install linux-image-amd64" >&2; exit 2; }
KVER=${KERNEL#/boot/vmlinuz-}
QEMU=$(command -v qemu-system-x86_64 || true)
[ -n "$QEMU" ] || { echo "run.sh: apt-get install qemu-system-x86" >&2; exit 2; }
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] && file -L "$BUSYBOX" | grep -q "statically linked" ||
    { echo "run.sh: needs a static busybox (apt-get install busybox-static)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/$GUEST.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/initrd/bin" "$WORK/initrd/lib/modules" "$WORK/results"
cp "$BUSYBOX" "$WORK/initrd/bin/busybox"
# 9p and overlayfs are modules in Debian's kernel; order from `modprobe -S $KVER --show-depends`.
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay"
for m in $MODULES; do
    ko=$(find "/lib/modules/$KVER/kernel" -name "$m.ko*" | head -1)
    [ -n "$ko" ] || continue # built in
    case "$ko" in
        *.xz) xz -dc "$ko" >"$WORK/initrd/lib/modules/$m.ko" ;;
        *.zst) zstd -dqc "$ko" >"$WORK/initrd/lib/modules/$m.ko" ;;
        *) cp "$ko" "$WORK/initrd/lib/modules/$m.ko" ;;
    esac
done
