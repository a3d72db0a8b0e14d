#!/bin/sh
# Build the busybox test rootfs from Debian's busybox-static: one static binary plus an applet link each.
# Usage: tests/make-rootfs.sh [DEST]   (default: .cache/rootfs next to this repo)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$here/.cache/rootfs}
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "make-rootfs: $busybox missing: apt-get install busybox-static" >&2; exit 1; }
# A dynamically linked busybox would need the host's libc inside the rootfs.
if ldd "$busybox" >/dev/null 2>&1; then echo "make-rootfs: $busybox is not static: install busybox-static" >&2; exit 1; fi
mkdir -p "$(dirname "$dest")"
tmp=$(mktemp -d "${dest}.XXXXXX")
chmod 0755 "$tmp"  # mktemp -d makes it 0700: a non-root container user could not reach /bin
mkdir -p "$tmp/bin" "$tmp/sbin" "$tmp/usr/bin" "$tmp/usr/sbin" "$tmp/etc" "$tmp/proc" "$tmp/sys" \
         "$tmp/dev" "$tmp/tmp" "$tmp/root" "$tmp/var" "$tmp/run" "$tmp/home" "$tmp/mnt"
cp "$busybox" "$tmp/bin/busybox"
chmod 0755 "$tmp/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$tmp/bin/$applet"
done
chmod 1777 "$tmp/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$tmp/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$tmp/etc/group"
rm -rf "$dest"
mv "$tmp" "$dest"
echo "$dest"
