# shellcheck shell=bash
# Source me (lab/xen/build-image.sh, lab/kvm/build-image.sh): what both
# labs' image builds share.  Under set -e: a failure ends the build.
#
# image_begin CACHE: a build into CACHE (a directory of the cache root,
# named by the image's key) begins: makes CACHE, a scratch directory WORK
# beside it (removed when the shell exits) and t0 (the start, for the
# build's time).  The build touches CACHE/done last: a caller that finds
# it reuses the image instead.
image_begin() {
    mkdir -p "$1"
    WORK=$(mktemp -d "$(dirname "$1")/build.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
    # shellcheck disable=SC2034  # the caller's
    t0=$(date +%s)
}
#
# kernel_unpack WHO [PACKAGE...]: Debian's current linux-image-*-amd64
# (and PACKAGE...) downloaded into WORK and unpacked into WORK/x; sets
# kpkg (its name) and kver (its modules' directory name).  WHO prefixes
# the progress line (stderr).  Fails, with why on stderr, when apt knows
# no such kernel.
kernel_unpack() {
    local who=$1 d
    shift
    kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    [ -n "$kpkg" ] || { echo "$who: no linux-image-*-amd64 package found (apt-get update?)" >&2; return 1; }
    echo "$who: downloading ${*:+$* and }$kpkg" >&2
    (cd "$WORK" && apt-get download -q "$@" "$kpkg" >/dev/null)
    mkdir -p "$WORK/x"
    for d in "$WORK"/*.deb; do dpkg-deb -x "$d" "$WORK/x"; done
    kver=$(basename "$WORK"/x/lib/modules/*)
}
#
# apt_mirror: the Debian mirror apt is configured with, on stdout; fails
# (with why, on stderr) when there is none.
apt_mirror() {
    local m
    m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$m" ] || m=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$m" ] || { echo "cannot find apt's Debian mirror" >&2; return 1; }
    echo "$m"
}
#
# root_pack ROOT MODULES KVER INIT OUT: the kernel's modules from
# MODULES/KVER (an unpacked linux-image package's lib/modules) into ROOT,
# without what a lab never loads (sound, GPUs, ...), depmod; the docs and
# apt's caches dropped; INIT as ROOT/init; ROOT packed into OUT, a gzipped
# newc cpio (an initramfs).
root_pack() {
    local root=$1 modules=$2 kver=$3 init_file=$4 out=$5 d
    mkdir -p "$root/lib/modules"
    cp -a "$modules/$kver" "$root/lib/modules/"
    for d in sound drivers/gpu drivers/media drivers/infiniband drivers/net/wireless \
             drivers/bluetooth net/bluetooth drivers/staging drivers/iio drivers/hid \
             drivers/input drivers/usb drivers/scsi drivers/ata fs/ocfs2 fs/nls; do
        rm -rf "$root/lib/modules/$kver/kernel/$d"
    done
    chroot "$root" depmod "$kver"
    rm -rf "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale \
           "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    cp "$init_file" "$root/init"
    chmod +x "$root/init"
    (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
}
