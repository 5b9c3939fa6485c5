#!/usr/bin/env bash
# remus save / remus restore on KVM: non-live and live (under a dirtying
# load) saves, restored in another process; the service's state and the
# same client's request ids carry on, the guest clock neither goes back nor
# leaps; corrupt and truncated streams are refused and leave no VM running.
. "$ROOT/tests/lib/kvm.sh"
ns_setup tap0

start_vm() {  # start_vm NAME CMDLINE VCPUS
    ip netns exec "$NS" "$REMUS" run --name "$1" --vcpus "$3" --ip 10.77.0.2 \
        --netmask 255.255.255.0 --tap tap0 --cmdline "$2" \
        --console "$TMP/$1.console" > "$TMP/$1.log" 2>&1 & PIDS+=($!)
}
restore_vm() {  # restore_vm NAME STREAM
    ip netns exec "$NS" "$REMUS" restore --name "$1" --tap tap0 \
        --console "$TMP/$1.console" "$2" > "$TMP/$1.log" 2>&1 & PIDS+=($!)
}

for mode in nonlive live; do
    if [ $mode = live ]; then opt=--live; cmd="dirty_rate=200000 dirty_wss=4000"; v=2
    else opt=; cmd=""; v=1; fi
    start_vm src-$mode "$cmd" $v
    kv 11 1 "INCR n" "INCR n" "SET m 41" > "$TMP/a"
    grep -q "^3 OK 41 seq=3$" "$TMP/a"
    st0=$(kv 11 4 STATS)
    t0=$(echo "$st0" | sed 's/.*writes=\([0-9]*\).*/\1/')
    c0=$(echo "$st0" | sed 's/.*now=\([0-9]*\).*/\1/')
    "$REMUS" save $opt src-$mode "$TMP/$mode.stream" 2> "$TMP/save.err" || {
        cat "$TMP/save.err" "$TMP/src-$mode.log"; exit 1; }
    cat "$TMP/save.err"
    # xl semantics: the saved VM stops
    wait "${PIDS[-1]}" || { echo "the saved VM did not stop cleanly"; exit 1; }
    "$REMUS" stream-info --quiet "$TMP/$mode.stream"
    restore_vm dst-$mode "$TMP/$mode.stream"
    out=$(kv 11 5 "GET n" "INCR m" STATS)
    echo "$mode: after restore: $(echo $out)"
    grep -q "^5 OK 2 seq=5$" <<< "$out"     # state and sequence go on
    grep -q "^6 OK 42 seq=6$" <<< "$out"
    t1=$(echo "$out" | sed -n 's/^7 OK writes=\([0-9]*\).*/\1/p')
    [ "$t1" -ge "$t0" ] || { echo "the workload went backwards"; exit 1; }
    c1=$(echo "$out" | sed -n 's/^7 OK .*now=\([0-9]*\).*/\1/p')
    # the guest clock goes on from where it was saved: never backwards, and
    # no leap (save + restore took well under 10 s of wall time)
    [ "$c1" -ge "$c0" ] || { echo "guest clock went back: $c0 -> $c1"; exit 1; }
    [ $((c1 - c0)) -lt 10000000000 ] || { echo "guest clock leapt: $c0 -> $c1"; exit 1; }
    echo "$mode: guest clock $c0 -> $c1 ns across save/restore"
    # a retransmission (same client, same request id) is answered from the
    # cache, not applied again; an older request id is refused
    [ "$(kv 11 7 "INCR m")" = "$(echo "$out" | sed -n '/^7 /p')" ]
    kv 11 6 "INCR m" | grep -q "^6 ERR stale-request"
    kill -TERM "${PIDS[-1]}"; wait "${PIDS[-1]}"
done
grep -q "pre-copy" "$TMP/src-live.log"

# Corrupt and truncated streams: refused with a reason, nothing runs.
size=$(stat -c %s "$TMP/nonlive.stream")
head -c $((size / 2)) "$TMP/nonlive.stream" > "$TMP/trunc.stream"
if "$REMUS" restore "$TMP/trunc.stream" 2> "$TMP/e1"; then exit 1; fi
grep -q "truncated at byte" "$TMP/e1"
cp "$TMP/nonlive.stream" "$TMP/bad.stream"
printf '\x7f\x7f\x7f\x7f' | dd of="$TMP/bad.stream" bs=1 seek=40 conv=notrunc status=none
if "$REMUS" restore "$TMP/bad.stream" 2> "$TMP/e2"; then exit 1; fi
grep -q "byte 40" "$TMP/e2"
head -c 1000 /dev/urandom > "$TMP/rand.stream"
if "$REMUS" restore "$TMP/rand.stream" 2> "$TMP/e3"; then exit 1; fi
grep -q "marker" "$TMP/e3"
# A Xen-typed stream is not for the KVM backend
"$BUILD/tests/mkstream" nonlive hvm "$TMP/hvm.stream"
if "$REMUS" restore "$TMP/hvm.stream" 2> "$TMP/e4"; then exit 1; fi
grep -q "cannot be restored on the KVM backend" "$TMP/e4"
if pgrep -f "remus restore $TMP" >/dev/null; then echo "a VM was left running"; exit 1; fi
head -n1 "$TMP/e1" "$TMP/e2" "$TMP/e4"

# A VM with a disk: the save file carries the disk (a full copy, and in a
# live save the writes made while it is read); restore --disk writes it
# into another image, on which the VM runs on.  Without --disk, or with an
# image of another size, the restore is refused, naming it.
for mode in nonlive live; do
    if [ $mode = live ]; then opt=--live; else opt=; fi
    rm -f "$TMP/d-$mode.img" "$TMP/e-$mode.img"
    truncate -s 2M "$TMP/d-$mode.img"; truncate -s 2M "$TMP/e-$mode.img"
    ip netns exec "$NS" "$REMUS" run --name disk-$mode --ip 10.77.0.2 --netmask 255.255.255.0 \
        --tap tap0 --config /dev/stdin --console "$TMP/disk-$mode.console" \
        > "$TMP/disk-$mode.log" 2>&1 <<EOC & PIDS+=($!)
image = $BUILD/guest/remus-guest.elf
disk = $TMP/d-$mode.img
EOC
    cmds=(); for i in $(seq 1 30); do cmds+=("SET k$i $((i * 5))"); done
    out=$(kv 12 1 "${cmds[@]}")
    [ "$(echo "$out" | grep -c " OK ")" = 30 ] || { echo "$mode: not all SETs acknowledged"; exit 1; }
    "$REMUS" save $opt disk-$mode "$TMP/disk-$mode.stream" 2> "$TMP/save.err" || {
        cat "$TMP/save.err" "$TMP/disk-$mode.log"; exit 1; }
    wait "${PIDS[-1]}" || { echo "the saved VM did not stop cleanly"; exit 1; }
    "$REMUS" stream-info "$TMP/disk-$mode.stream" | grep -q "DISK_INFO" || { echo "$mode: the save file has no disk"; exit 1; }
    if "$REMUS" restore --paused "$TMP/disk-$mode.stream" 2> "$TMP/e5"; then echo "$mode: restored without --disk"; exit 1; fi
    grep -q "carries disk 0 but this receiver has no --disk" "$TMP/e5" || { cat "$TMP/e5"; exit 1; }
    truncate -s 1M "$TMP/small.img"
    if "$REMUS" restore --paused --disk "$TMP/small.img" "$TMP/disk-$mode.stream" 2> "$TMP/e6"; then echo "$mode: restored into a smaller image"; exit 1; fi
    grep -q "small.img" "$TMP/e6" || { cat "$TMP/e6"; echo "the wrong-size image is not named"; exit 1; }
    ip netns exec "$NS" "$REMUS" restore --name disk-$mode-r --tap tap0 --disk "$TMP/e-$mode.img" \
        --console "$TMP/disk-$mode-r.console" "$TMP/disk-$mode.stream" > "$TMP/disk-$mode-r.log" 2>&1 & PIDS+=($!)
    out=$(kv 12 31 "GET k1" "GET k30" DISKCHECK)
    grep -q "^31 OK 5 " <<< "$out" || { echo "$mode: k1 lost: $out"; cat "$TMP/disk-$mode-r.log"; exit 1; }
    grep -q "^32 OK 150 " <<< "$out" || { echo "$mode: k30 lost: $out"; exit 1; }
    grep -q "^33 OK disk=ok records=30 " <<< "$out" || { echo "$mode: DISKCHECK: $out"; exit 1; }
    cmp "$TMP/d-$mode.img" "$TMP/e-$mode.img" || { echo "$mode: the restored image differs from the saved VM's"; exit 1; }
    kill -TERM "${PIDS[-1]}"; wait "${PIDS[-1]}" || true
    echo "$mode save with a disk: restored into another image, identical, DISKCHECK ok"
done
