# Source me.  Helpers for KVM integration tests: a private network
# namespace with a bridge (10.77.0.1/24) and TAPs, and cleanup.
set -euo pipefail
if [ ! -e /dev/kvm ]; then
    echo "SKIP: /dev/kvm is absent on this machine"; exit 77
fi
NS="rmtest$$"
TMP=$(mktemp -d /tmp/remus-test.XXXXXX)
export REMUS_RUN_DIR="$TMP/run"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "logs kept in $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
NSX() { ip netns exec "$NS" "$@"; }
ns_setup() {   # ns_setup TAP...
    ip netns add "$NS"
    NSX ip link set lo up
    NSX ip link add br0 type bridge
    NSX ip link set br0 up
    NSX ip addr add 10.77.0.1/24 dev br0
    local t
    for t in "$@"; do
        NSX ip tuntap add dev "$t" mode tap
        NSX ip link set "$t" master br0 up
    done
}
kv() { NSX "$BUILD/tests/kvcli" 10.77.0.2 "$@"; }
# wait_for FILE PATTERN SECONDS
wait_for() {
    local i
    for i in $(seq 1 $(( $3 * 10 ))); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1:"; cat "$1"; return 1
}
guest_cfg() {  # guest_cfg FILE TAP [cmdline] [vcpus]
    cat > "$1" <<EOC
name = tguest
memory = 64
vcpus = ${4:-1}
image = $BUILD/guest/remus-guest.elf
ip = 10.77.0.2
netmask = 255.255.255.0
tap = $2
cmdline = "${3:-}"
EOC
}
