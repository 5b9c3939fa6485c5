#!/usr/bin/env bash
# Disk replication on the micro-VMM (common/disklog.h): the guest keeps its
# key-value data on its disk and the secondary's image follows it at each
# checkpoint's cut.
#  - refused at the handshake, named: no --disk for a primary's disk, an
#    image of another size, --disk for a primary without one; a missing
#    image refused by receive at start;
#  - the initial sync sends only the chunks that differ, and once the
#    guest is idle both images are equal byte for byte (P1, P7);
#  - kill -9 of the primary: the replica serves every acknowledged write
#    and its disk agrees with its memory; `remus reprotect` to a new
#    secondary sends only the stale chunks of its image; when the VM's
#    host dies again the new secondary takes over with every write, and a
#    guest cold-booted from a copy of its image (its host dead too) has
#    them all;
#  - `remus handover` carries the disk;
#  - a checkpoint cut after its disk writes and before its end leaves the
#    replica's disk at its last commit (P2); the test mode that applies
#    disk writes on arrival (protocol C) is caught by the same check.
. "$ROOT/tests/lib/kvm.sh"
. "$ROOT/tests/lib/disk.sh"
ns_setup tapp taps
MIB=4
guest_cfg "$TMP/g.cfg" tapp "" 1
echo "disk = $TMP/p.img" >> "$TMP/g.cfg"
guest_cfg "$TMP/nodisk.cfg" tapp "" 1
HB="--heartbeat 50 --heartbeat-timeout $(slow_ms 600)"
# refused N: primary N's handshake was refused (its VM then runs on,
# unprotected, as after any refusal: stopped here).
refused() {
    wait_for "$TMP/pri$1.log" "the secondary refused us" 20 > /dev/null \
        || { cat "$TMP/pri$1.log"; echo "primary $1 was not refused"; exit 1; }
    kill -9 $PRI; wait $PRI 2>/dev/null || true
}

scenario "refused at the handshake, named"
fresh "$TMP/p.img"
start_sec 7941 "$TMP/s0.log" $HB
start_pri 0 7941 $HB
refused 0
grep -q "replicates disk 0 (4194304 bytes) and this secondary has no replica image for it (--disk PATH)" "$TMP/pri0.log" \
    || { cat "$TMP/pri0.log"; echo "the refusal does not name the missing replica image"; exit 1; }
kill $SEC 2>/dev/null || true; wait $SEC 2>/dev/null || true
truncate -s 2M "$TMP/small.img"
start_sec 7942 "$TMP/s1.log" $HB --disk "$TMP/small.img"
start_pri 1 7942 $HB
refused 1
grep -q "disk 0: the primary's image is 4194304 bytes, this secondary's replica image is 2097152 bytes" "$TMP/pri1.log" \
    || { cat "$TMP/pri1.log"; echo "the refusal does not name both sizes"; exit 1; }
kill $SEC 2>/dev/null || true; wait $SEC 2>/dev/null || true
fresh "$TMP/r.img"
start_sec 7943 "$TMP/s2.log" $HB --disk "$TMP/r.img"
ip netns exec "$NS" "$REMUS" protect -i 20 --progress 0 $HB "$TMP/nodisk.cfg" 127.0.0.1:7943 > "$TMP/pri2.log" 2>&1 & PRI=$!; PIDS+=($PRI)
refused 2
grep -q "this secondary has a replica image for disk 0 (--disk) and the primary replicates no such disk" "$TMP/pri2.log" \
    || { cat "$TMP/pri2.log"; exit 1; }
kill $SEC 2>/dev/null || true; wait $SEC 2>/dev/null || true
if NSX "$REMUS" receive --listen 127.0.0.1:7944 --disk "$TMP/nosuch.img" 2> "$TMP/e"; then echo "a missing --disk image was accepted"; exit 1; fi
grep -q "$TMP/nosuch.img" "$TMP/e" || { cat "$TMP/e"; echo "the missing image is not named"; exit 1; }
if NSX "$REMUS" receive --listen 127.0.0.1:7944 --disk-sync 2> "$TMP/e"; then exit 1; fi
grep -q "disk-sync without --disk" "$TMP/e" || { cat "$TMP/e"; exit 1; }
echo "refusals: $(grep -o 'error: .*' "$TMP/pri1.log" | head -1)"

scenario "the initial sync sends only what differs; idle, both images are equal (P1, P7)"
fresh "$TMP/p.img"
fresh "$TMP/r.img"
# The replica's image differs in three places (64 KiB chunks 5, 20, 40).
for c in 5 20 40; do
    head -c 4096 /dev/urandom | dd of="$TMP/r.img" bs=4096 seek=$((c * 16 + 1)) conv=notrunc status=none
done
start_sec 7945 "$TMP/s3.log" $HB --disk "$TMP/r.img"
start_pri 3 7945 $HB --stats-file "$TMP/stats3"
sets 1 40 a
wait_for "$TMP/pri3.log" "chunks differ" 5
line=$(grep -o "disks: [0-9]* of [0-9]* chunks differ" "$TMP/pri3.log")
differ=$(echo "$line" | awk '{print $2}'); total=$(echo "$line" | awk '{print $4}')
echo "initial sync: $line"
[ "$total" = 64 ] || { echo "a 4 MiB image has 64 chunks of 64 KiB, not $total"; exit 1; }
# the three scribbled chunks, and the guest's format at its first boot
if [ "$differ" -lt 3 ] || [ "$differ" -gt 5 ]; then echo "$differ chunks sent, want the 3 scribbled (and the guest's first writes)"; exit 1; fi
diskcheck 2; recs=$DISK_RECORDS
[ "$recs" = 40 ] || { echo "the primary's log holds $recs records, want 40"; exit 1; }
sleep 0.5      # a few idle checkpoints, every write acknowledged
cmp "$TMP/p.img" "$TMP/r.img" || { echo "idle and acknowledged, the replica's image differs from the primary's"; exit 1; }
echo "idle: the two images are identical"

scenario "kill -9 of the primary: the replica's disk holds every acknowledged write"
sets 3 60 b
kill -9 $PRI
wait_for "$TMP/s3.log" "FAILOVER" 10
check_sets 4 40 a
check_sets 5 60 b
diskcheck 6; recs=$DISK_RECORDS
[ "$recs" = 100 ] || { echo "the replica's disk holds $recs records, want 100"; exit 1; }
echo "failover: the replica's disk holds the 100 acknowledged SETs"
# P3 on the micro-VMM: its vCPUs park only between hypercalls, so no disk
# write is ever in flight at a cut (disk_late, the 7th column, always 0)
late=$(awk '$7 != 0' "$TMP/stats3" | wc -l)
n=$(wc -l < "$TMP/stats3")
[ "$n" -gt 10 ] && [ "$(awk 'NF != 16' "$TMP/stats3" | wc -l)" = 0 ] || { echo "stats: $n lines, not all of 16 columns (7, the pause's 7 parts, its faults and map_us)"; exit 1; }
# map_us (16th) is part of "pages" (12th): never more
over=$(awk '$16 > $12' "$TMP/stats3" | wc -l)
[ "$over" = 0 ] || { echo "$over checkpoints' map_us exceed their pages part"; exit 1; }
[ "$late" = 0 ] || { echo "$late of $n checkpoints had disk writes in flight at the cut"; exit 1; }
echo "P3: none of $n checkpoints had a disk write in flight at its cut"

scenario "reprotect carries the disk (hash resync); the new secondary takes over with it"
A=$SEC
cp "$TMP/r.img" "$TMP/rb.img"           # B's image: A's, but stale in 2 places
for c in 3 30; do
    head -c 4096 /dev/urandom | dd of="$TMP/rb.img" bs=4096 seek=$((c * 16 + 2)) conv=notrunc status=none
done
ip netns exec "$NS" "$REMUS" receive --listen 127.0.0.1:7946 --tap tapb $HB --disk "$TMP/rb.img" \
    > "$TMP/sb.log" 2>&1 & B=$!; PIDS+=($B)
NSX ip tuntap add dev tapb mode tap 2>/dev/null || true
NSX ip link set tapb master br0 up
NSX "$REMUS" reprotect -i 20 $HB tguest 127.0.0.1:7946 2> "$TMP/rp.log" || { cat "$TMP/rp.log"; exit 1; }
grep -q "protected again" "$TMP/rp.log" || { cat "$TMP/rp.log"; exit 1; }
line=$(grep -o "disks: [0-9]* of [0-9]* chunks differ" "$TMP/s3.log")
echo "reprotect's resync: $line"
[ "$(echo "$line" | awk '{print $2}')" = 2 ] || { echo "reprotect sent other than the 2 stale chunks"; exit 1; }
sets 10 30 c
kill -9 $A; wait $A 2>/dev/null || true        # A's host dies
wait_for "$TMP/sb.log" "FAILOVER" 10
check_sets 11 40 a
check_sets 12 60 b
check_sets 13 30 c
diskcheck 14; recs=$DISK_RECORDS
[ "$recs" = 130 ] || { echo "B's disk holds $recs records, want 130"; exit 1; }
SEC=$B
kill -9 $SEC; wait $SEC 2>/dev/null || true     # B's host dies too
cp "$TMP/rb.img" "$TMP/cold.img"
guest_cfg "$TMP/cold.cfg" taps "" 1
echo "disk = $TMP/cold.img" >> "$TMP/cold.cfg"
ip netns exec "$NS" "$REMUS" run --config "$TMP/cold.cfg" > "$TMP/cold.log" 2>&1 & VM=$!; PIDS+=($VM)
check_sets 7 40 a
check_sets 8 60 b
check_sets 9 30 c
diskcheck 15; recs=$DISK_RECORDS
[ "$recs" = 130 ] || { echo "the cold-booted copy holds $recs records, want 130"; exit 1; }
kill -TERM $VM; wait $VM || true
echo "reprotect, failover to B, cold boot of B's image: 130 records, every acknowledged SET"

scenario "handover carries the disk: the secondary runs on with every acknowledged write"
fresh "$TMP/p.img"; fresh "$TMP/r.img"
start_sec 7947 "$TMP/s4.log" $HB --disk "$TMP/r.img"
start_pri 4 7947 $HB
sets 30 25 h
"$REMUS" handover tguest > "$TMP/h.out" 2> "$TMP/h.err" || { cat "$TMP/h.err"; exit 1; }
rc=0; wait $PRI || rc=$?
[ $rc = 0 ] || { echo "the old primary exited $rc, not 0"; exit 1; }
wait_for "$TMP/s4.log" "FAILOVER" 10
check_sets 31 25 h
diskcheck 32; recs=$DISK_RECORDS
[ "$recs" = 25 ] || { echo "after the handover the disk holds $recs records, want 25"; exit 1; }
sets 33 5 after
kill -TERM $SEC; wait $SEC 2>/dev/null || true
echo "handover: $(cat "$TMP/h.out"); 25 records on the new primary's disk"

# cut_run NAME [ENV...]: protect through tcpmangle disk-cut; the writer
# and the primary die once a checkpoint's disk writes reached the
# secondary without the checkpoint's end.  Prints the replica's DISKCHECK.
cut_run() {
    local name=$1 relay w; shift
    fresh "$TMP/p.img"; fresh "$TMP/r.img"
    # (not through a shell function: $! must be the process itself)
    ip netns exec "$NS" "$BUILD/tests/tcpmangle" 7950 7951 disk-cut 1500 > "$TMP/$name.relay" 2>&1 & relay=$!; PIDS+=($relay)
    ip netns exec "$NS" env "$@" "$REMUS" receive --listen 127.0.0.1:7951 --tap taps --insecure $HB \
        --disk "$TMP/r.img" > "$TMP/$name.sec" 2>&1 & SEC=$!; PIDS+=($SEC)
    wait_until 10 "the receiver listening" listening 7951
    ip netns exec "$NS" "$REMUS" protect -i 20 --progress 0 --insecure $HB "$TMP/g.cfg" 127.0.0.1:7950 \
        > "$TMP/$name.pri" 2>&1 & PRI=$!; PIDS+=($PRI)
    kv 20 1 "SET w0 1" > /dev/null
    cmds=(); for i in $(seq 1 3000); do cmds+=("SET w$((i % 50)) $i"); done
    ip netns exec "$NS" "$BUILD/tests/kvcli" 10.77.0.2 21 1 "${cmds[@]}" > /dev/null 2>&1 & w=$!; PIDS+=($w)
    wait_for "$TMP/$name.relay" "cut the stream" 20 > /dev/null || { echo "$name: the relay never cut"; cat "$TMP/$name.relay"; return 1; }
    kill -9 $w 2>/dev/null || true
    kill -9 $PRI
    wait_for "$TMP/$name.sec" "FAILOVER" 10 > /dev/null || { echo "$name: no failover"; return 1; }
    kv 22 1 DISKCHECK
    kill -9 $SEC $relay 2>/dev/null || true
    wait $SEC $relay 2>/dev/null || true
}

scenario "a checkpoint cut after its disk writes: the replica's disk stays at its last commit (P2)"
out=$(cut_run cut)
echo "replica after the cut: $out"
case "$out" in "1 OK disk=ok records="*) ;; *) echo "the replica's disk does not match its memory after the cut"; exit 1;; esac
grep -q "resumed from checkpoint" "$TMP/cut.sec" || { echo "no takeover"; exit 1; }

scenario "negative control: disk writes applied on arrival (protocol C) are caught"
out=$(cut_run cutc REMUS_TEST_DISK_ON_ARRIVAL=1)
echo "replica after the cut, protocol C: $out"
grep -q "TEST MODE (REMUS_TEST_DISK_ON_ARRIVAL)" "$TMP/cutc.sec" || { echo "the test mode was not on"; exit 1; }
case "$out" in *"ERR disk-mismatch"*) ;; *) echo "negative control passed, the check cannot fail: a disk ahead of its memory went unnoticed"; exit 1;; esac
echo "kvm_disk_protect: handshake refusals, initial sync, P1, failover, cold boot, P2 and its protocol C control"
