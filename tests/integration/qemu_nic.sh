#!/usr/bin/env bash
# The multiboot guest's NIC (guest/arch/mb_e1000.c): under QEMU with KVM
# (-device e1000 on a tap, -machine q35 and pc), the same guest's UDP
# key-value service answers SET, GET and INCR, and ping.  Runs in a private network
# namespace (unshare -n: the tap, its address and the client live and die
# with it), so it needs root.
set -euo pipefail
img="$BUILD/guest/remus-guest-mb.bin"
kvcli="$BUILD/tests/kvcli"
[ -f "$img" ] || { echo "$img is missing"; exit 1; }
[ -x "$kvcli" ] || { echo "$kvcli is missing"; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 missing (make deps)"; exit 1; }
[ -c /dev/kvm ] || { echo "no /dev/kvm"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "not root: no network namespace"; exit 77; }

if [ -z "${QEMU_NIC_IN_NETNS:-}" ]; then
    QEMU_NIC_IN_NETNS=1 exec unshare -n "$0" "$@"
fi

log=$(mktemp)
qpid=
cleanup() {
    if [ -n "$qpid" ]; then kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; fi
    rm -f "$log"
}
trap cleanup EXIT

ip link set lo up
ip tuntap add tap0 mode tap
ip addr add 10.77.0.1/24 dev tap0
ip link set tap0 up

boot() {   # boot MACHINE: the guest on tap0, up with its NIC, or fail
    : >"$log"
    # Without arch-capabilities: on AMD hosts under PVM, QEMU aborts setting
    # MSR 0x10a (IA32_ARCH_CAPABILITIES) that -cpu host otherwise advertises.
    qemu-system-x86_64 -enable-kvm -cpu host,-arch-capabilities -machine "$1" \
        -smp 1 -m 64 -kernel "$img" -append "ip=10.77.0.2 dirty_rate=0 dirty_wss=0" \
        -display none -monitor none -no-reboot -serial "file:$log" \
        -netdev tap,id=n0,ifname=tap0,script=no,downscript=no,vhost=off \
        -device e1000,netdev=n0,mac=52:54:00:c0:10:07,romfile= & qpid=$!
    for _ in $(seq 1 300); do
        # the whole line: the console file may hold half of it
        if grep -q "kv on .*(max\|without network.*(max\|CPU exception" "$log" 2>/dev/null; then
            break
        fi
        kill -0 "$qpid" 2>/dev/null || break
        sleep 0.1
    done
    echo "--- guest console (-machine $1) ---"; cat "$log"; echo
    if grep -q "CPU exception" "$log"; then echo "the guest faulted"; return 1; fi
    grep -q "e1000 at 00:.*($2).*mac 52:54:00:c0:10:07" "$log" ||
        { echo "the driver did not find the NIC through $2"; return 1; }
    grep -q "kv on 10.77.0.2:7000" "$log" || { echo "the guest came up without network"; return 1; }
}

stop() {
    kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; qpid=
}

ask() {   # ask EXPECTED REQ-ID CMD: one request (kvcli retransmits for 5 s)
    local want=$1 out
    out=$("$kvcli" 10.77.0.2 7 "$2" "$3" 2>&1) || { echo "no answer to '$3': $out"; return 1; }
    echo "$3 -> $out"
    case "$out" in *"$want"*) ;; *) echo "want '$want'"; return 1 ;; esac
}

# q35: PCI configuration through ECAM (MMIO); pc (i440fx, what the COLO
# bench uses): through ports 0xCF8/0xCFC (32-bit in/out, #GP-emulated).
for m in "q35 ecam" "pc ports"; do
    set -- $m
    echo "== scenario: -machine $1"
    boot "$1" "$2"
    ask "OK 41 seq=1" 1 "SET nic 41"
    ask "OK 41 seq=2" 2 "GET nic"
    ask "OK 42 seq=3" 3 "INCR nic"
    ask "OK 42 seq=4" 4 "GET nic"
    ping -c 2 -W 2 10.77.0.2
    stop
    echo "-machine $1: the guest answered over its e1000"
done
