#!/usr/bin/env bash
# Page offlining on the KVM micro-VMM: `remus offline-page VM HOSTFRAME`
# moves every guest frame off a host page while the guest is paused (a
# fresh host page, same contents; the old one kept out of use).  Moving
# the frames that hold the guest's own code and data must leave it
# running and its service state intact.  The undo path (a failing map, a
# copy that does not verify) leaves the frame where it was.  Refusals:
# frames out of range, a host frame that is not the guest's.
. "$ROOT/tests/lib/kvm.sh"
ns_setup tapo
guest_cfg "$TMP/g.cfg" tapo "dirty_rate=2000 dirty_wss=500" 1
ip netns exec "$NS" "$REMUS" run --config "$TMP/g.cfg" --console "$TMP/console" \
    > "$TMP/run.log" 2>&1 & VM=$!; PIDS+=($VM)
kv 1 1 "INCR a" "INCR a" "INCR a" | tail -1 | grep -q "^3 OK 3 "
hostframe() { "$REMUS" offline-page --gfn --dry-run tguest "$1" | awk '{print $NF}'; }

# The guest image sits at 1 MiB: move its first 64 frames, one by one,
# each by its host frame number.
moved=0
for g in $(seq $((0x100)) $((0x13f))); do
    old=$(hostframe $g)
    "$REMUS" offline-page tguest "$old" > "$TMP/o.log"
    new=$(hostframe $g)
    grep -q "moved off host frame $old to $new" "$TMP/o.log" || { cat "$TMP/o.log"; echo "frame $g: $old -> $new"; exit 1; }
    [ "$old" != "$new" ] || { echo "frame $g still on $old"; exit 1; }
    moved=$((moved + 1))
done
echo "moved $moved guest frames (the guest's code and data) to new host pages"
kv 1 4 "GET a" "INCR a" | tail -1 | grep -q "^5 OK 4 " || { echo "the guest lost its state"; exit 1; }
kill -0 $VM

# Undo path: a failing map, a copy that does not verify.  Each undo must
# leave the frame on the host frame it had: the VM reads it again right
# after the undo, still paused, and logs "left on host frame X (undone)"
# (X the frame it read before the move) or "(moved back)".  Not compared
# from outside across the run (a read before and one after), as it was:
# the kernel can move a process's pages on its own (compaction,
# khugepaged collapsing a region the move split), the likely cause of CI's
# nested lab once seeing the frame on another host frame after a verify
# undo (2026-12-05; not reproduced).
undos_logged() { [ "$(grep -c "left on host frame" "$TMP/run.log")" -gt "$1" ]; }
undo_gfn=0x200   # as the VM logs it
for f in map verify; do
    n=$(grep -c "left on host frame" "$TMP/run.log" || true)
    if "$REMUS" offline-page --gfn --test-fault $f tguest $undo_gfn 2> "$TMP/u.log"; then echo "--test-fault $f succeeded"; exit 1; fi
    cat "$TMP/u.log"
    [ $f = map ] && want="cannot map a fresh page" || want="does not match the original"
    grep -q "$want" "$TMP/u.log" || { echo "undo ($f): unexpected error"; exit 1; }
    wait_until 5 "the VM's log of the undo ($f)" undos_logged "$n"
    line=$(grep "left on host frame" "$TMP/run.log" | tail -1)
    case $line in
    *"guest frame $undo_gfn left on host frame "*" (undone)") echo "undo ($f): ${line#*: }" ;;
    *) echo "undo ($f): the frame did not go back where it was: $line"; exit 1 ;;
    esac
done
kv 1 6 "INCR a" | grep -q "^6 OK 5 " || { echo "the guest is hurt after the undo"; exit 1; }

# Refusals
if "$REMUS" offline-page --gfn tguest 0x100000 2> "$TMP/r1"; then exit 1; fi
grep -q "beyond the guest's" "$TMP/r1"
if "$REMUS" offline-page tguest 0x1 2> "$TMP/r2"; then exit 1; fi
grep -q "backs no frame of this guest" "$TMP/r2"
if "$REMUS" offline-page tguest zz 2> "$TMP/r3"; then exit 1; fi
grep -q "is not a number" "$TMP/r3"
kill -INT $VM; wait $VM || true
grep -q "quarantined" "$TMP/run.log"
echo "offline-page: $(grep -c "moved off host frame" "$TMP/run.log") frames moved, the undo path left frames in place"
