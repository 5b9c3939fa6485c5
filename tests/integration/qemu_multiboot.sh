#!/usr/bin/env bash
# The same guest, built for multiboot, boots under QEMU (-kernel) and runs
# its memory workload, reporting page-writes/s on the serial console:
# with TCG, and with KVM acceleration (on this PVM-based /dev/kvm the
# guest's port I/O from CPL3 faults and its #GP handler performs it).
set -euo pipefail
img="$BUILD/guest/remus-guest-mb.bin"
[ -f "$img" ] || { echo "$img is missing"; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 missing (make deps)"; exit 1; }
log=$(mktemp)
qpid=
cleanup() { if [ -n "$qpid" ]; then kill "$qpid" 2>/dev/null || true; fi; rm -f "$log"; }
trap cleanup EXIT

boot() {   # boot ACCEL-ARGS...: wait for two rate lines, check the output
    : >"$log"
    timeout 30 qemu-system-x86_64 "$@" -kernel "$img" -m 128 \
        -append "dirty_rate=0 dirty_wss=500" -display none \
        -serial "file:$log" -monitor none -no-reboot & qpid=$!
    for _ in $(seq 1 200); do
        if [ "$(grep -c 'page-writes/s' "$log" 2>/dev/null)" -ge 2 ]; then break; fi
        kill -0 "$qpid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; qpid=
    echo "--- qemu $* ---"; cat "$log"; echo
    if grep -q "CPU exception" "$log"; then echo "the guest faulted"; return 1; fi
    grep -q "remus-guest (multiboot): 127 MiB" "$log" || { echo "no banner"; return 1; }
    grep -q "workload 500 pages" "$log" || { echo "no workload line"; return 1; }
    local rate
    rate=$(grep 'page-writes/s' "$log" | tail -1 | awk '{print $3}')
    [ "${rate:-0}" -gt 0 ] || { echo "the workload did not run"; return 1; }
    echo "rate $rate page-writes/s"
}

boot -accel tcg
[ -c /dev/kvm ] || { echo "no /dev/kvm: the KVM boot was not run"; exit 77; }
# Without arch-capabilities: on AMD hosts under PVM, QEMU aborts setting
# MSR 0x10a (IA32_ARCH_CAPABILITIES) that -cpu host otherwise advertises.
boot -enable-kvm -cpu host,-arch-capabilities
