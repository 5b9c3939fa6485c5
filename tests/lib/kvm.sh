# Source me.  Helpers for KVM integration tests: a private network
# namespace with a bridge (10.77.0.1/24) and TAPs, and cleanup.
set -euo pipefail
. "$ROOT/tests/lib/wait.sh"
if [ ! -e /dev/kvm ]; then
    echo "SKIP: /dev/kvm is absent on this machine"; exit 77
fi
NS="rmtest$$"
TMP=$(mktemp -d /tmp/remus-test.XXXXXX)
export REMUS_RUN_DIR="$TMP/run"
# Keyed by default, as an operator runs it: every protect/receive of a test
# authenticates with this key ($REMUS_KEY_FILE) unless it says --key-file
# or --insecure.
export REMUS_KEY_FILE="$TMP/test.key"
"$REMUS" keygen "$REMUS_KEY_FILE" > /dev/null
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
    if wait_until "$3" "'$2' in $1" in_file "$1" "$2"; then return 0; fi
    cat "$1"; return 1
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
# check_convergence PRI_DIGESTS SEC_DIGESTS MIN WHAT: the primary's and the
# replica's whole-memory digests ("epoch digest" lines) agree for every
# epoch both logged, and there are at least MIN such epochs.
check_convergence() {
    local common same
    common=$(join <(sort "$1") <(sort "$2") | wc -l)
    same=$(join <(sort "$1") <(sort "$2") | awk '$2==$3' | wc -l)
    echo "$4: $same of $common common epochs have identical memory"
    [ "$common" -ge "$3" ] || { echo "$4: only $common common epochs (want >= $3)"; return 1; }
    [ "$same" = "$common" ] || { echo "$4: the replica's memory differs in $((common - same)) epochs"; return 1; }
}
# convergence_controls PRI SEC MIN: check_convergence must fail on the same
# digests with one replica digest changed, with no replica digests, and
# with too few common epochs.
convergence_controls() {
    awk 'NR==2 {$2 = "0000000000000000"} {print}' "$2" > "$TMP/nc.diverged"
    must_fail "a replica digest differs" check_convergence "$1" "$TMP/nc.diverged" "$3" nc
    : > "$TMP/nc.empty"
    must_fail "no replica digests" check_convergence "$1" "$TMP/nc.empty" "$3" nc
    head -n $(( $3 - 1 )) "$2" > "$TMP/nc.few"
    must_fail "too few common epochs" check_convergence "$1" "$TMP/nc.few" "$3" nc
}
# stop_pri PID: end protection, then the VM (two signals, apart).
stop_pri() { kill -INT "$1" 2>/dev/null || true; sleep 0.3; kill -INT "$1" 2>/dev/null || true; }
# start_sec PORT LOG [OPTION...]: `remus receive` on 127.0.0.1:PORT in the
# namespace (TAP taps), its output to LOG; SEC is its pid.
start_sec() {
    local port=$1 log=$2; shift 2
    ip netns exec "$NS" "$REMUS" receive --listen 127.0.0.1:$port --tap taps \
        "$@" > "$log" 2>&1 & SEC=$!; PIDS+=($SEC)
}
# start_pri N PORT [OPTION...]: `remus protect` of the test VM $TMP/g.cfg
# to 127.0.0.1:PORT, its log and console $TMP/priN.log and .console; PRI
# is its pid.
start_pri() {
    local n=$1 port=$2; shift 2
    ip netns exec "$NS" "$REMUS" protect -i 20 --progress 0 "$@" \
        --console "$TMP/pri$n.console" "$TMP/g.cfg" 127.0.0.1:$port \
        > "$TMP/pri$n.log" 2>&1 & PRI=$!; PIDS+=($PRI)
}
# wait_exit PID SECONDS: wait for a child to end (gone, tests/lib/wait.sh);
# returns its exit status (124, said, when it still runs).  Not in a
# subshell: it waits for our child.
wait_exit() {
    gone "$1" "$2" || return 124
    wait "$1"
}
# acked_while_protected CLIENT KEY PRIMARY_LOG: up to 30 "INCR KEY"; prints
# how many were acknowledged before the primary logged that it runs
# UNPROTECTED (a reply after that may come from the primary alone).
acked_while_protected() {
    local i n=0
    for i in $(seq 1 30); do
        kv "$1" "$i" "INCR $2" > /dev/null || continue
        if grep -q "UNPROTECTED" "$3"; then break; fi
        n=$i
    done
    echo "$n"
}
