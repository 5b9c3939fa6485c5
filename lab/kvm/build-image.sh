#!/usr/bin/env bash
# Build (or reuse from the cache) what the nested KVM lab boots:
#   $CACHE/vmlinuz        Debian's 6.1 -amd64 kernel (it has kvm_amd)
#   $CACHE/root.cpio.gz   a Debian 12 root (debootstrap minbase) with the
#                         packages named on the command line, the kernel's
#                         modules and lab/kvm/init as /init
#   build-image.sh PACKAGE...
# All from Debian packages: the kernel by `apt-get download` + `dpkg-deb
# -x`, the root by debootstrap from the mirror apt is configured with.
# The cache key is a hash of this script, lab/kvm/init and the package
# list: a changed recipe rebuilds.  CACHE defaults to
# /var/cache/remus/kvm-lab.  Prints the cache directory on its last line.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE_ROOT=${KVM_LAB_CACHE:-/var/cache/remus/kvm-lab}
KEY=$( { cat "$0" "$HERE/init"; printf '%s\n' "$@"; } | sha256sum | cut -c1-12)
CACHE="$CACHE_ROOT/$KEY"
if [ -f "$CACHE/done" ]; then
    echo "$CACHE"
    exit 0
fi
mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE_ROOT/build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
t0=$(date +%s)

mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || { echo "kvm-lab: cannot find apt's Debian mirror" >&2; exit 1; }

kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
[ -n "$kpkg" ] || { echo "kvm-lab: no linux-image-*-amd64 package found (apt-get update?)" >&2; exit 1; }
echo "kvm-lab: downloading $kpkg" >&2
(cd "$WORK" && apt-get download -q "$kpkg" >/dev/null)
mkdir -p "$WORK/x"
dpkg-deb -x "$WORK"/*.deb "$WORK/x"
kver=$(basename "$WORK"/x/lib/modules/*)

echo "kvm-lab: debootstrap of the root from $mirror with $# packages (a few minutes)" >&2
root="$WORK/root"
pkgs=$(printf '%s,' "$@")
debootstrap --variant=minbase --include="${pkgs%,}" bookworm "$root" "$mirror" \
    > "$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
# The kernel's modules, without what the lab never loads
mkdir -p "$root/lib/modules"
cp -a "$WORK/x/lib/modules/$kver" "$root/lib/modules/"
for d in sound drivers/gpu drivers/media drivers/infiniband drivers/net/wireless \
         drivers/bluetooth net/bluetooth drivers/staging drivers/iio drivers/hid \
         drivers/input drivers/usb drivers/scsi drivers/ata fs/ocfs2 fs/nls; do
    rm -rf "$root/lib/modules/$kver/kernel/$d"
done
chroot "$root" depmod "$kver"
rm -rf "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale \
       "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
cp "$HERE/init" "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$CACHE/root.cpio.gz"
cp "$WORK"/x/boot/vmlinuz-* "$CACHE/vmlinuz"
touch "$CACHE/done"
echo "kvm-lab: image built in $(( $(date +%s) - t0 )) s" >&2
echo "$CACHE"
