#!/usr/bin/env bash
# bench/many_vms.py (make bench, #21 goal 6) does not rot: run with 1 and 2
# VMs and a 2 s window, it measures every row (no NOT MEASURED, exit 0),
# and its figures are figures: a checkpoint rate, pauses, CPU, memory.
# Its negative control: with a guest image that does not exist, no pair
# reaches protection and it says NOT MEASURED and exits 1.  Nothing here
# judges a figure: performance is measured by `make bench`, not asserted.
. "$ROOT/tests/lib/kvm.sh"
out="$TMP/bench"
MANY_VMS_COUNTS=1,2 MANY_VMS_WINDOW_S=2 python3 "$ROOT/bench/many_vms.py" "$BUILD" "$out" \
    > "$TMP/many.md" 2> "$TMP/many.err" || { cat "$TMP/many.md" "$TMP/many.err"; exit 1; }
cat "$TMP/many.md"
rows() { grep -cE '^\| [0-9]+ \| [0-9.]+ \| [0-9.]+ ms \| [0-9.]+ ms \|' "$1" || true; }
[ "$(rows "$TMP/many.md")" = 2 ] || { echo "want 2 measured rows"; exit 1; }
if grep -q "NOT MEASURED" "$TMP/many.md"; then echo "a row was not measured"; exit 1; fi
# The stats files carry the pause's parts (columns 8-14) that add up to
# the pause (column 2), within rounding.
awk 'NF < 14 { print "a stats line without the parts: " $0; bad = 1; exit }
     { s = 0; for (i = 8; i <= 14; i++) s += $i
       if (s > $2 + 8 || s < $2 - 8) { print "parts " s " us vs pause " $2 " us"; bad = 1; exit } }
     END { exit bad }' "$out/many-vms/1-vm1.stats"
# Negative control: a build without the guest image.
mkdir -p "$TMP/nobuild/guest"
ln -s "$BUILD/remus" "$TMP/nobuild/remus"
must_fail "many_vms.py without a guest image" \
    env MANY_VMS_COUNTS=1 MANY_VMS_WINDOW_S=1 python3 "$ROOT/bench/many_vms.py" "$TMP/nobuild" "$TMP/nb"
echo ok
