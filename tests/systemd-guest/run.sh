#!/bin/sh
# Run a command as root on a machine where systemd is PID 1: a qemu guest (software emulation, no KVM) booting
# Debian's kernel with this machine's root filesystem as a read-only 9p share under a tmpfs overlay (as
# tests/cgroup2-guest does), then systemd from that root instead of a shell. The command runs as a oneshot
# service of a minimal target (no getty, network, journal, udev: only what the systemd cgroup driver needs),
# so the repo and its virtualenv are at the same paths inside and /run/systemd/private answers.
#
#   tests/systemd-guest/run.sh                                 # tests/integration/test_systemd_cgroup.py
#   tests/systemd-guest/run.sh .venv/bin/python -m pytest -q tests/integration/test_systemd_cgroup.py -k pause
#   ENGINE_SYSTEMD_GUEST_CGROUPS=hybrid tests/systemd-guest/run.sh ...   # systemd's hybrid layout (v1 + cgroup2)
#
# ENGINE_SYSTEMD_GUEST_CGROUPS: unified (default: systemd.unified_cgroup_hierarchy=1, pure cgroup v2) or hybrid
# (systemd.unified_cgroup_hierarchy=0: v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified).
# ENGINE_SYSTEMD_GUEST_DBUS=1 also starts dbus-daemon's system bus (dbus.service) before the command, and waits
# until systemd owns its name there: clients then reach systemd through it, as runc prefers; without it they use
# /run/systemd/private.
# Needs root and the Debian packages qemu-system-x86, linux-image-amd64 (not -cloud-: it lacks 9p),
# busybox-static and systemd. Exits with the command's status (3: the guest never finished); its output is
# printed at the end, after a line with the boot time. systemd is never started on this machine itself.
set -eu

REPO=$(cd "$(dirname "$0")/../.." && pwd)
TIMEOUT=${ENGINE_GUEST_TIMEOUT:-900}
CGROUPS=${ENGINE_SYSTEMD_GUEST_CGROUPS:-unified}
if [ "$#" -eq 0 ]; then
    set -- .venv/bin/python -m pytest -q -p no:cacheprovider -p no:hypothesispytest -o addopts= -rs tests/integration/test_systemd_cgroup.py
fi
case "$CGROUPS" in
    unified) HIERARCHY=1 ;;
    hybrid) HIERARCHY=0 ;;
    *) echo "run.sh: ENGINE_SYSTEMD_GUEST_CGROUPS must be unified or hybrid, not $CGROUPS" >&2; exit 2 ;;
esac

GUEST=systemd-guest
. "$REPO/tests/guest-initrd.sh"
[ -x /lib/systemd/systemd ] || { echo "run.sh: no /lib/systemd/systemd: apt-get install systemd" >&2; exit 2; }

# What systemd boots into, written into the overlay's upper layer (the host's /etc is never touched):
# a target that wants only the test service; every generator masked (they would read the host's fstab,
# gettys, sysv scripts, and each costs seconds under emulation).
RESULTS=/systemd-guest-results
mkdir -p "$WORK/units" "$WORK/generators"
for g in /lib/systemd/system-generators/* /usr/lib/systemd/system-generators/* /etc/systemd/system-generators/*; do
    [ -e "$g" ] && ln -sf /dev/null "$WORK/generators/$(basename "$g")"
done
cat >"$WORK/units/engine-guest.target" <<EOF
[Unit]
Description=engine: the systemd cgroup driver's test lane
Requires=engine-guest.service
After=engine-guest.service
EOF
DBUS_WANTS=""
DBUS_WAIT=""
if [ "${ENGINE_SYSTEMD_GUEST_DBUS:-0}" = 1 ]; then
    # dbus.socket and dbus.service as systemd starts them (systemd then joins the bus by itself), without their
    # default dependencies, which would pull in sysinit.target and half the system with it.
    for u in dbus.socket dbus.service; do
        mkdir -p "$WORK/units/$u.d"
        printf '[Unit]\nDefaultDependencies=no\n' >"$WORK/units/$u.d/engine-guest.conf"
    done
    DBUS_WANTS="Wants=dbus.service
After=dbus.service"
    DBUS_WAIT="for i in \$(seq 150); do systemd_on_bus && break; sleep 0.2; done"
fi
cat >"$WORK/units/engine-guest.service" <<EOF
[Unit]
Description=engine: the command under test
DefaultDependencies=no
$DBUS_WANTS

[Service]
Type=oneshot
ExecStart=/bin/sh $RESULTS/guest.sh
StandardOutput=null
StandardError=null
EOF

cat >"$WORK/initrd/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
for m in $MODULES; do [ -e /lib/modules/\$m.ko ] && insmod /lib/modules/\$m.ko; done
mkdir -p /host /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose hostroot /host
mount -t tmpfs -o mode=755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot
mkdir -p /newroot$RESULTS
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results /newroot$RESULTS
mkdir -p /newroot/etc/systemd/system /newroot/etc/systemd/system-generators
cp -r /newroot$RESULTS/units/* /newroot/etc/systemd/system/
cp -a /newroot$RESULTS/generators/. /newroot/etc/systemd/system-generators/
# This machine may itself be a container (/.dockerenv): hide that, or systemd would run in container mode and
# ignore the kernel command line. The guest is a virtual machine.
rm -f /newroot/.dockerenv /newroot/run/.containerenv
date +%s.%N >/newroot$RESULTS/switch-root-at 2>/dev/null || true
mount --move /dev /newroot/dev
umount /sys /proc
exec switch_root /newroot /lib/systemd/systemd
echo "systemd-guest: switch_root failed"; echo o >/proc/sysrq-trigger
EOF
chmod +x "$WORK/initrd/init"
cp -r "$WORK/units" "$WORK/generators" "$WORK/results/"

# The command, quoted for sh, runs in the repo as root from the test service (a cgroup of its own under
# system.slice, as a supervisor would run).
CMD=""
for arg in "$@"; do CMD="$CMD '$(printf %s "$arg" | sed "s/'/'\\\\''/g")'"; done
cat >"$WORK/results/guest.sh" <<EOF
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp
unset ENGINE_SYSTEMD_GUEST ENGINE_CGROUP2_GUEST
systemd_on_bus() {  # owned, not merely activatable
    dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner string:org.freedesktop.systemd1 2>/dev/null | grep -q 'boolean true'
}
{
    echo "systemd-guest: kernel \$(uname -r), systemd \$(systemctl --version | head -1 | cut -d' ' -f2), cgroups $CGROUPS"
    echo "systemd-guest: up \$(cut -d' ' -f1 /proc/uptime) s when the command started; own cgroup \$(cat /proc/self/cgroup | tr '\n' ' ')"
} >$RESULTS/output.txt
$DBUS_WAIT
systemd_on_bus && echo "systemd-guest: systemd is on dbus-daemon's system bus" >>$RESULTS/output.txt
# An inner time limit, so that a hanging command still leaves its output and a status behind.
cd "$REPO" && timeout -k 10 $((TIMEOUT - 90)) $CMD >>$RESULTS/output.txt 2>&1
echo \$? >$RESULTS/rc
sync
echo o >/proc/sysrq-trigger
EOF

(cd "$WORK/initrd" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initrd.gz"

APPEND="console=ttyS0 quiet panic=-1 systemd.unified_cgroup_hierarchy=$HIERARCHY systemd.unit=engine-guest.target"
APPEND="$APPEND systemd.show_status=0 systemd.log_level=warning systemd.firstboot=0 systemd.journald.forward_to_console=0"
timeout "$TIMEOUT" "$QEMU" -accel tcg -m 2048 -smp 2 -nographic -no-reboot -nic none \
    -kernel "$KERNEL" -initrd "$WORK/initrd.gz" -append "$APPEND" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$WORK/results,mount_tag=results,security_model=none" \
    </dev/null >"$WORK/console.log" 2>&1 || true

if [ ! -f "$WORK/results/rc" ]; then
    echo "systemd-guest: the guest did not finish; console:" >&2
    head -c 6000 "$WORK/console.log" >&2; echo ... >&2; tail -c 3000 "$WORK/console.log" >&2
    [ -f "$WORK/results/output.txt" ] && tail -40 "$WORK/results/output.txt" >&2
    exit 3
fi
cat "$WORK/results/output.txt"
exit "$(cat "$WORK/results/rc")"
