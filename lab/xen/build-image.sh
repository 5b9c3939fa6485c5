#!/usr/bin/env bash
# Build (or reuse from the cache) what the Xen lab boots:
#   $CACHE/xen.gz-extracted -> xen.bin      Xen 4.17 (multiboot ELF)
#   $CACHE/vmlinuz                          Debian's 6.1 -amd64 kernel (dom0 and guest)
#   $CACHE/dom0.cpio.gz                     dom0 root (debootstrap minbase + Xen tools)
#   $CACHE/guest.cpio.gz                    the PVH guest's busybox initramfs
# All from Debian packages: `apt-get download` + `dpkg-deb -x` (nothing
# installed on the host but debootstrap, busybox-static, cpio) and
# debootstrap from the mirror apt is configured with.
# The cache key is a hash of this script, lab/xen/rootfs/* and
# lab/lib/root.sh: a changed recipe rebuilds (`build-image.sh --key`
# prints it).  CACHE defaults to /var/cache/remus/xen-lab.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/root.sh
. "$HERE/../lib/root.sh"
CACHE_ROOT=${XEN_LAB_CACHE:-/var/cache/remus/xen-lab}
KEY=$(cat "$0" "$HERE"/rootfs/* "$HERE/../lib/root.sh" 2>/dev/null | sha256sum | cut -c1-12)
# --key: the key alone (run-scenario.sh and tests/once/xen_lab_retry.sh
# find the image by it), nothing built
if [ "${1:-}" = --key ]; then echo "$KEY"; exit 0; fi
CACHE="$CACHE_ROOT/$KEY"
if [ -f "$CACHE/done" ]; then
    echo "xen-lab: image cached in $CACHE"
    exit 0
fi
image_begin "$CACHE"
mirror=$(apt_mirror)
kernel_unpack xen-lab xen-hypervisor-4.17-amd64
gunzip -c "$WORK"/x/boot/xen-4.17-amd64.gz > "$CACHE/xen.bin"
cp "$WORK"/x/boot/vmlinuz-* "$CACHE/vmlinuz"

echo "xen-lab: debootstrap of dom0 from $mirror (about a minute)"
root="$WORK/root"
debootstrap --variant=minbase \
    --include=xen-utils-4.17,kmod,iproute2,busybox,python3,libnl-3-200,libnl-route-3-200,libprotobuf-c1,libsodium23,libquorum5,libvotequorum8,libcpg4,libsystemd0,libmicrohttpd12,corosync,corosync-qdevice,corosync-qnetd \
    bookworm "$root" "$mirror" > "$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log"; exit 1; }
root_pack "$root" "$WORK/x/lib/modules" "$kver" "$HERE/rootfs/init" "$CACHE/dom0.cpio.gz"

echo "xen-lab: the PVH guest's initramfs"
g="$WORK/guest"
mkdir -p "$g"/{bin,proc,sys,dev,tmp,lib}
cp /bin/busybox "$g/bin/busybox"
for a in sh echo cat sleep mount seq date ip insmod ping nc httpd dd grep; do ln -s busybox "$g/bin/$a"; done
# netfront, for guests with a VIF (guest-net.cfg); blkfront, for guests
# with a disk (lab_disk on the command line)
for m in xen-netfront xen-blkfront; do
    f=$(find "$WORK/x/lib/modules/$kver" -name "$m.ko*" | head -1)
    [ -n "$f" ] || { echo "xen-lab: no $m module in $kpkg"; exit 1; }
    case "$f" in
    *.xz) xz -dc "$f" > "$g/lib/$m.ko" ;;
    *.zst) zstd -qdc "$f" > "$g/lib/$m.ko" ;;
    *) cp "$f" "$g/lib/$m.ko" ;;
    esac
done
# lab-aio: asynchronous O_DIRECT writes (lab_aio on the command line)
gcc -static -O2 -Wall -Wextra -Werror -o "$g/bin/lab-aio" "$HERE/rootfs/lab-aio.c"
cp "$HERE/rootfs/guest-init" "$g/init"
chmod +x "$g/init"
(cd "$g" && find . | cpio -o -H newc --quiet | gzip -1) > "$CACHE/guest.cpio.gz"
cp "$CACHE/vmlinuz" "$CACHE/guest-vmlinuz"

echo "$kver" > "$CACHE/kernel-version"
touch "$CACHE/done"
ls -la "$CACHE"
echo "xen-lab: image built in $(( $(date +%s) - t0 )) s into $CACHE"
