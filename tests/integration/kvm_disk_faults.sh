#!/usr/bin/env bash
# Disk replication's faults on the micro-VMM (README "Disks"):
#  - P5: the guest's writes are FUA, so every checkpoint with disk writes
#    is fdatasync'd by the secondary before it is acknowledged: strace
#    counts the receiver's fdatasync calls and its stats agree (also with
#    --disk-sync);
#  - P6: with a small cap (protect --disk-buffer-bytes) and a secondary
#    that stops acknowledging for a moment (SIGSTOP), guest writes wait
#    (the progress line's waits), and after a failover every acknowledged
#    write is on the replica; the same load without the cap never waits
#    (the check's negative control);
#  - P10: a receive on an image marked dirty says so, resyncs it and lifts
#    the mark after its first commit; a primary that dies during the
#    initial sync of a dirty image leaves the mark and no takeover;
#  - a replica image on a full file system: the pair ends with an error
#    naming the image, the mark stays, the primary runs on with every
#    acknowledged write;
#  - a read-only replica image is refused at receive's start, named.
. "$ROOT/tests/lib/kvm.sh"
. "$ROOT/tests/lib/disk.sh"
ns_setup tapp taps
MIB=4
guest_cfg "$TMP/g.cfg" tapp "" 1
echo "disk = $TMP/p.img" >> "$TMP/g.cfg"
HB="--heartbeat 50 --heartbeat-timeout $(slow_ms 600)"
# stat_of LOG FIELD: a figure of the receiver's "disk replica:" line.
stat_of() {
    grep -o "disk replica: .*" "$1" | tail -1 | grep -o "[0-9]* $2" | awk '{print $1}'
}

# p5 NAME PORT [RECEIVE OPTION...]: the receiver under strace; 30 SETs; kill -9
# of the primary.  Checks the fdatasyncs before the failover.
p5() {
    local name=$1 port=$2 tracer n_sys syncs epochs; shift 2
    fresh "$TMP/p.img"; fresh "$TMP/r.img"
    ip netns exec "$NS" strace -f -qq -e trace=fdatasync -o "$TMP/$name.strace" \
        "$REMUS" receive --listen 127.0.0.1:$port --tap taps $HB --disk "$TMP/r.img" "$@" \
        > "$TMP/$name.sec" 2>&1 & tracer=$!; PIDS+=($tracer)
    wait_until 10 "the receiver listening" listening $port
    SEC=$(pgrep -P $tracer); PIDS+=($SEC)
    start_pri "$name" $port $HB
    sets 1 30 a
    kill -9 $PRI; wait $PRI 2>/dev/null || true
    wait_for "$TMP/$name.sec" "FAILOVER" 10 > /dev/null
    wait_for "$TMP/$name.sec" "disk replica:" 5 > /dev/null
    # Before any request reaches the resumed guest: only the receive's
    # fdatasyncs (the VM's own come with its writes, none yet).
    n_sys=$(grep -c "fdatasync(" "$TMP/$name.strace" || true)
    syncs=$(stat_of "$TMP/$name.sec" fdatasyncs)
    epochs=$(stat_of "$TMP/$name.sec" "checkpoints applied")
    echo "$name: $(grep -o "disk replica: .*" "$TMP/$name.sec"); strace: $n_sys fdatasync calls"
    # every checkpoint with disk writes held FUA writes (the guest's only
    # kind) or the resync's last part: each one was synced
    [ "${syncs:-0}" -ge 1 ] || { echo "$name: the replica never fdatasync'd its image"; return 1; }
    [ "$syncs" = "$epochs" ] || { echo "$name: $syncs fdatasyncs for $epochs checkpoints with disk writes"; return 1; }
    [ "$n_sys" = "$syncs" ] || { echo "$name: strace saw $n_sys fdatasync calls, the stats say $syncs"; return 1; }
    check_sets 2 30 a
    diskcheck 3
    kill -9 $SEC $tracer 2>/dev/null || true; wait $SEC $tracer 2>/dev/null || true
}

scenario "P5: every checkpoint with FUA writes is fdatasync'd before its ack"
p5 p5 7961
p5 p5s 7962 --disk-sync

# p6 NAME PORT [PROTECT OPTION...]: 12 writers of 20 SETs each (the
# guest's log holds 256 records), the receiver stopped for 1.5 s in their
# middle; WAITS gets the waits of the primary's last progress line; then a
# failover, and every acknowledged write is checked.
p6() {
    local name=$1 port=$2 c w=() waits; shift 2
    fresh "$TMP/p.img"; fresh "$TMP/r.img"
    start_sec $port "$TMP/$name.sec" --heartbeat 50 --heartbeat-timeout 5000 --disk "$TMP/r.img"
    wait_until 10 "the receiver listening" listening $port
    ip netns exec "$NS" "$REMUS" protect -i 20 --progress 50 --heartbeat 50 --heartbeat-timeout 5000 "$@" \
        "$TMP/g.cfg" 127.0.0.1:$port > "$TMP/$name.pri" 2>&1 & PRI=$!; PIDS+=($PRI)
    sets 1 5 x
    for c in $(seq 10 21); do
        sets $c 20 "k$c-" > "$TMP/$name.w$c" 2>&1 & w+=($!); PIDS+=($!)
    done
    sleep 0.3
    kill -STOP $SEC
    sleep 1.5
    kill -CONT $SEC
    for c in "${w[@]}"; do wait "$c" || { echo "$name: a writer lost a SET"; return 1; }; done
    sleep 0.2
    WAITS=$(grep -o "waits [0-9]*" "$TMP/$name.pri" | tail -1 | awk '{print $2}')
    [ -n "$WAITS" ] || { cat "$TMP/$name.pri"; echo "$name: no progress line with the disk's waits"; return 1; }
    kill -9 $PRI; wait $PRI 2>/dev/null || true
    wait_for "$TMP/$name.sec" "FAILOVER" 10 > /dev/null
    for c in $(seq 10 21); do check_sets $((c + 20)) 20 "k$c-"; done
    diskcheck 50
    kill -9 $SEC 2>/dev/null || true; wait $SEC 2>/dev/null || true
}

scenario "P6: past the cap, guest writes wait; nothing acknowledged is lost"
p6 p6 7963 --disk-buffer-bytes 4096
echo "cap 4096 bytes, the receiver stopped 1.5 s: $WAITS writes waited; failover: all 245 SETs there"
[ "$WAITS" -ge 1 ] || { echo "no guest write waited on the cap"; exit 1; }
p6 p6n 7964
echo "default cap (negative control of the check): $WAITS writes waited"
[ "$WAITS" = 0 ] || { echo "writes waited under the default cap: the check does not measure the cap"; exit 1; }

scenario "a read-only replica image is refused at receive's start, named"
# (a read-only bind mount in a mount namespace of our own: as root, a 0444
# mode would not stop O_RDWR)
mkdir -p "$TMP/ro"; truncate -s ${MIB}M "$TMP/ro/r.img"
# (timeout: an image taken would leave the receiver listening)
rc=0
unshare -m bash -c "mount --bind '$TMP/ro' '$TMP/ro' && mount -o remount,ro,bind '$TMP/ro' &&
    exec timeout 10 ip netns exec '$NS' '$REMUS' receive --listen 127.0.0.1:7970 --disk '$TMP/ro/r.img'" \
    > "$TMP/ro.out" 2>&1 || rc=$?
case $rc in 0|124) cat "$TMP/ro.out"; echo "a read-only replica image was accepted (exit $rc)"; exit 1;; esac
grep -q "replica image $TMP/ro/r.img cannot be opened for writing (read-only): Read-only file system" "$TMP/ro.out" \
    || { cat "$TMP/ro.out"; echo "the read-only refusal does not name the image"; exit 1; }
echo "refused: $(grep -o 'disk 0: .*' "$TMP/ro.out" | head -1)"

scenario "P10: a receive on a dirty image says so, resyncs it, and lifts the mark at its first commit"
fresh "$TMP/p.img"; fresh "$TMP/r.img"
head -c 4096 /dev/urandom | dd of="$TMP/r.img" bs=4096 seek=100 conv=notrunc status=none
echo "applying epoch 7" > "$TMP/r.img.remus-dirty"
start_sec 7971 "$TMP/d.sec" $HB --disk "$TMP/r.img"
wait_until 10 "the receiver listening" listening 7971
grep -q "disk 0: $TMP/r.img is dirty ($TMP/r.img.remus-dirty); it must be fully resynced" "$TMP/d.sec" \
    || { cat "$TMP/d.sec"; echo "the receiver does not say that its image is dirty"; exit 1; }
start_pri d 7971 $HB
sets 1 10 d
mark_gone() { [ ! -e "$TMP/r.img.remus-dirty" ]; }
wait_until 5 "the dirty mark lifted" mark_gone
sleep 0.5      # idle, every write acknowledged
cmp "$TMP/p.img" "$TMP/r.img" || { echo "the resynced image differs from the primary's"; exit 1; }
echo "the mark is gone after the first commit; idle, the two images are identical"
kill -9 $PRI $SEC 2>/dev/null || true; wait $PRI $SEC 2>/dev/null || true

scenario "P10: the primary dies during the initial sync of a dirty image: the mark stays, no takeover"
# 64 MiB of random bytes on the replica: every chunk differs; loopback
# limited to 80 Mbit/s, the initial sync takes some 7 s, and the relay
# stalls both connections 3 s after the stream opened: in its middle.
fresh "$TMP/p.img"; rm -f "$TMP/rr.img.remus-dirty"
truncate -s 64M "$TMP/p64.img"
head -c 64M /dev/urandom > "$TMP/rr.img"; cp "$TMP/rr.img" "$TMP/rr.orig"
echo "applying epoch 7" > "$TMP/rr.img.remus-dirty"
sed "s|^disk = .*|disk = $TMP/p64.img|" "$TMP/g.cfg" > "$TMP/g64.cfg"
NSX tc qdisc add dev lo root tbf rate 80mbit burst 256kb latency 2000ms
HB5="--heartbeat 50 --heartbeat-timeout 5000"
ip netns exec "$NS" "$BUILD/tests/tcpmangle" 7972 7973 stall 3000 > "$TMP/st.relay" 2>&1 & relay=$!; PIDS+=($relay)
start_sec 7973 "$TMP/st.sec" $HB5 --disk "$TMP/rr.img"
wait_until 10 "the receiver listening" listening 7973
ip netns exec "$NS" "$REMUS" protect -i 20 --progress 0 $HB5 "$TMP/g64.cfg" 127.0.0.1:7972 \
    > "$TMP/prist.log" 2>&1 & PRI=$!; PIDS+=($PRI)
wait_for "$TMP/st.relay" "stall" 10 > /dev/null || { echo "the relay never stalled"; exit 1; }
if grep -q "corrupted" "$TMP/st.relay"; then cat "$TMP/st.relay"; echo "the relay corrupted the stream before its stall"; exit 1; fi
kill -9 $PRI; wait $PRI 2>/dev/null || true
rc=0; wait_exit $SEC 20 || rc=$?
NSX tc qdisc del dev lo root
cat "$TMP/st.sec" | tail -3
[ "$rc" != 0 ] || { echo "the receiver ended well without a committed checkpoint"; exit 1; }
[ "$rc" != 124 ] || { echo "the receiver still runs"; exit 1; }
if grep -q "FAILOVER\|resumed from checkpoint" "$TMP/st.sec"; then echo "a dirty image took over"; exit 1; fi
grep -q "disk replica: 0 checkpoints applied" "$TMP/st.sec" || { echo "the stall came after the initial sync"; exit 1; }
grep -q "no consistent state" "$TMP/st.sec" || { echo "the receiver does not say why it does not take over"; exit 1; }
[ -e "$TMP/rr.img.remus-dirty" ] || { echo "the dirty mark went without a resync"; exit 1; }
if cmp -s "$TMP/rr.img" "$TMP/rr.orig"; then part="before any chunk arrived"; else part="after some chunks were written"; fi
echo "cut $part: the mark stays, no takeover"
kill -9 $relay 2>/dev/null || true; wait $relay 2>/dev/null || true

scenario "a replica image on a full file system: the pair ends, named; the primary runs on with every write"
fresh "$TMP/p.img"; mkdir -p "$TMP/full"
# 80 KiB of tmpfs under a sparse 4 MiB image: the initial sync's first
# chunk (the guest formatted its disk) and the mark take 17 pages, the
# guest's records fill the other 3 after some 150 SETs.
ip netns exec "$NS" unshare -m bash -c "mount -t tmpfs -o size=80k tmpfs '$TMP/full' && truncate -s ${MIB}M '$TMP/full/r.img' &&
    { '$REMUS' receive --listen 127.0.0.1:7974 --tap taps $HB --disk '$TMP/full/r.img'; echo \"receive ended: \$?\"; ls '$TMP/full'; }" \
    > "$TMP/full.sec" 2>&1 & SEC=$!; PIDS+=($SEC)
wait_until 10 "the receiver listening" listening 7974
start_pri full 7974 $HB
sets 1 200 f
wait_exit $SEC 10 || { cat "$TMP/full.sec"; echo "the receiver did not end"; exit 1; }
tail -4 "$TMP/full.sec"
grep -q "$TMP/full/r.img.*No space left on device" "$TMP/full.sec" \
    || { cat "$TMP/full.sec"; echo "the receiver's error does not name the full image"; exit 1; }
grep -q "checkpoint [0-9]* failed half applied" "$TMP/full.sec" || { echo "the disk did not fill during the protection"; exit 1; }
grep -q "must not run (its last consistent state was checkpoint [0-9]*): disk 0 epoch [0-9]*: write" "$TMP/full.sec" \
    || { echo "the error's prefix and its reason do not read as one sentence"; exit 1; }
grep -q "receive ended: [1-9]" "$TMP/full.sec" || { echo "the receiver ended well on a full disk"; exit 1; }
if grep -q "FAILOVER\|resumed from checkpoint" "$TMP/full.sec"; then echo "the secondary took over on a failed apply"; exit 1; fi
grep -q "^r.img.remus-dirty$" "$TMP/full.sec" || { echo "the failed apply left no dirty mark"; exit 1; }
alive $PRI || { cat "$TMP/prifull.log"; echo "the primary did not run on"; exit 1; }
grep -q "UNPROTECTED" "$TMP/prifull.log" || { cat "$TMP/prifull.log"; echo "the primary does not say it runs unprotected"; exit 1; }
check_sets 2 200 f
diskcheck 3
echo "full: $(grep -o 'error: .*' "$TMP/full.sec" | head -1 | cut -c1-200)"
kill -9 $PRI; wait $PRI 2>/dev/null || true
echo "kvm_disk_faults: ok"
