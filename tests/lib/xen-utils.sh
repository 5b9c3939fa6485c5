# Source me: provides xen_verify_stream FILE [FORMAT].
# Xen's own stream checker (verify-stream-v2 from Debian's xen-utils-4.17),
# unpacked -- never installed -- into a cache directory.
XEN_UTILS_CACHE=${XEN_UTILS_CACHE:-/var/cache/remus/xen-utils}

xen_utils_fetch() {
    local dir=$XEN_UTILS_CACHE
    if [ -x "$dir/root/usr/lib/xen-4.17/bin/verify-stream-v2" ]; then return 0; fi
    mkdir -p "$dir/dl" || return 1
    (cd "$dir/dl" && { apt-get download xen-utils-4.17 >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 &&
          apt-get download xen-utils-4.17 >/dev/null 2>&1; }; }) || {
        echo "cannot download Debian's xen-utils-4.17 (for verify-stream-v2)" >&2
        return 1; }
    rm -rf "$dir/root" && mkdir -p "$dir/root" &&
        dpkg-deb -x "$dir"/dl/xen-utils-4.17_*.deb "$dir/root"
}

xen_verify_stream() {
    local file=$1 fmt=${2:-libxc} dir=$XEN_UTILS_CACHE/root
    PYTHONPATH=$dir/usr/lib/xen-4.17/lib/python \
        python3 "$dir/usr/lib/xen-4.17/bin/verify-stream-v2" -f "$fmt" -i "$file"
}
