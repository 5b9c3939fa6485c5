#!/usr/bin/env bash
# Build (or reuse from the cache) what the nested KVM lab boots:
#   $CACHE/vmlinuz        Debian's 6.1 -amd64 kernel (it has kvm_amd)
#   $CACHE/root.cpio.gz   a Debian 12 root (debootstrap minbase) with the
#                         packages named on the command line, the kernel's
#                         modules and lab/kvm/init as /init
#   build-image.sh PACKAGE...
# All from Debian packages: the kernel by `apt-get download` + `dpkg-deb
# -x`, the root by debootstrap from the mirror apt is configured with.
# The cache key is a hash of this script, lab/kvm/init, lab/lib/root.sh
# and the package list: a changed recipe rebuilds.  CACHE defaults to
# /var/cache/remus/kvm-lab.  Prints the cache directory on its last line.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/root.sh
. "$HERE/../lib/root.sh"
CACHE_ROOT=${KVM_LAB_CACHE:-/var/cache/remus/kvm-lab}
KEY=$( { cat "$0" "$HERE/init" "$HERE/../lib/root.sh"; printf '%s\n' "$@"; } | sha256sum | cut -c1-12)
CACHE="$CACHE_ROOT/$KEY"
if [ -f "$CACHE/done" ]; then
    echo "$CACHE"
    exit 0
fi
image_begin "$CACHE"
mirror=$(apt_mirror)
kernel_unpack kvm-lab

echo "kvm-lab: debootstrap of the root from $mirror with $# packages (a few minutes)" >&2
root="$WORK/root"
pkgs=$(printf '%s,' "$@")
debootstrap --variant=minbase --include="${pkgs%,}" bookworm "$root" "$mirror" \
    > "$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
root_pack "$root" "$WORK/x/lib/modules" "$kver" "$HERE/init" "$CACHE/root.cpio.gz"
cp "$WORK"/x/boot/vmlinuz-* "$CACHE/vmlinuz"
touch "$CACHE/done"
echo "kvm-lab: image built in $(( $(date +%s) - t0 )) s" >&2
echo "$CACHE"
