#!/usr/bin/env bash
# The same guest, built for multiboot, boots under QEMU (-kernel, TCG) and
# runs its memory workload, reporting page-writes/s on the serial console.
set -euo pipefail
img="$BUILD/guest/remus-guest-mb.bin"
[ -f "$img" ] || { echo "$img is missing"; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 missing (make deps)"; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
timeout 20 qemu-system-x86_64 -accel tcg -kernel "$img" -m 128 \
    -append "dirty_rate=0 dirty_wss=500" -display none -serial "file:$log" \
    -monitor none -no-reboot & qpid=$!
for i in $(seq 1 150); do
    [ "$(grep -c 'page-writes/s' "$log" 2>/dev/null)" -ge 2 ] && break
    sleep 0.1
done
kill $qpid 2>/dev/null || true; wait $qpid 2>/dev/null || true
cat "$log"
grep -q "remus-guest (multiboot): 127 MiB" "$log"
grep -q "workload 500 pages" "$log"
rate=$(grep 'page-writes/s' "$log" | tail -1 | awk '{print $3}')
[ "${rate:-0}" -gt 0 ] || { echo "the workload did not run"; exit 1; }
