#!/bin/sh
# Run a command (by default the cgroup integration tests) as root on a pure cgroup v2 kernel: a qemu guest
# (software emulation, no KVM) booting Debian's kernel with this machine's root filesystem as a read-only 9p
# share under a tmpfs overlay, so the repo and its virtualenv are at the same paths inside.
#
#   tests/cgroup2-guest/run.sh                       # tests/integration/test_cgroups.py
#   tests/cgroup2-guest/run.sh .venv/bin/python -m pytest -q tests/integration/test_cgroups.py -k freeze
#
# Needs root and the Debian packages qemu-system-x86, linux-image-amd64 (not -cloud-: it lacks 9p) and
# busybox-static. Exits with the command's status; its output is printed at the end. See docs/cgroups.md and
# ../shared/notes/cgroup-v2-guest.md. Takes ~12 s plus the command (Python starts in ~4 s under emulation).
set -eu

REPO=$(cd "$(dirname "$0")/../.." && pwd)
TIMEOUT=${ENGINE_GUEST_TIMEOUT:-900}
if [ "$#" -eq 0 ]; then
    set -- .venv/bin/python -m pytest -q -p no:cacheprovider -o addopts= tests/integration/test_cgroups.py
fi

GUEST=cgroup2-guest
. "$REPO/tests/guest-initrd.sh"

RESULTS_IN_GUEST=/cgroup2-guest-results
cat >"$WORK/initrd/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
for m in $MODULES; do [ -e /lib/modules/\$m.ko ] && insmod /lib/modules/\$m.ko; done
mkdir -p /host /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /host
mount -t tmpfs -o mode=755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot
mkdir -p /newroot$RESULTS_IN_GUEST
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results /newroot$RESULTS_IN_GUEST
mount --move /dev /newroot/dev
umount /sys /proc
exec switch_root /newroot /bin/sh $RESULTS_IN_GUEST/guest.sh
echo "cgroup2-guest: switch_root failed"; echo o >/proc/sysrq-trigger
EOF
chmod +x "$WORK/initrd/init"

# The command, quoted for sh, runs in the repo as root with cgroup2 mounted at /sys/fs/cgroup.
CMD=""
for arg in "$@"; do CMD="$CMD '$(printf %s "$arg" | sed "s/'/'\\\\''/g")'"; done
cat >"$WORK/results/guest.sh" <<EOF
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t cgroup2 -o nsdelegate none /sys/fs/cgroup
mount -t tmpfs tmpfs /run
# /tmp stays the writable overlay: a tmpfs there would hide a repo checked out under /tmp (as CI may).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp
unset ENGINE_CGROUP2_GUEST
echo "cgroup2-guest: kernel \$(uname -r), controllers: \$(cat /sys/fs/cgroup/cgroup.controllers)" >$RESULTS_IN_GUEST/output.txt
# An inner time limit, so that a hanging command still leaves its output and a status behind.
cd "$REPO" && timeout -k 10 $((TIMEOUT - 90)) $CMD >>$RESULTS_IN_GUEST/output.txt 2>&1
echo \$? >$RESULTS_IN_GUEST/rc
sync
echo o >/proc/sysrq-trigger
EOF

(cd "$WORK/initrd" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initrd.gz"

timeout "$TIMEOUT" "$QEMU" -accel tcg -m 2048 -smp 2 -nographic -no-reboot -nic none \
    -kernel "$KERNEL" -initrd "$WORK/initrd.gz" -append "console=ttyS0 quiet panic=-1" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$WORK/results,mount_tag=results,security_model=none" \
    </dev/null >"$WORK/console.log" 2>&1 || true

if [ ! -f "$WORK/results/rc" ]; then
    echo "cgroup2-guest: the guest did not finish; console:" >&2
    tail -40 "$WORK/console.log" >&2
    [ -f "$WORK/results/output.txt" ] && tail -40 "$WORK/results/output.txt" >&2
    exit 3
fi
cat "$WORK/results/output.txt"
exit "$(cat "$WORK/results/rc")"
