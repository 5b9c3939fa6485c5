#!/usr/bin/env bash
# Output commit, audited end to end: while a client loads the protected
# guest's service, the primary logs every held frame it lets out (the epoch
# that produced it, the acknowledged epoch that released it, the time) and
# the secondary logs every commit (epoch, time, written before its ack).
# Every frame a client could see must have been produced by an epoch that
# the secondary had committed before the frame left: produced <= released_by
# and a commit of released_by (or later) precedes the release.
. "$ROOT/tests/lib/kvm.sh"
ns_setup tapp taps
PORT=127.0.0.1:7791
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=5000 dirty_wss=1024" 2
ip netns exec "$NS" "$REMUS" receive --listen $PORT --tap taps \
    --commit-log "$TMP/commits" > "$TMP/sec.log" 2>&1 & SEC=$!; PIDS+=($SEC)
ip netns exec "$NS" "$REMUS" protect -i 30 --progress 0 \
    --release-log "$TMP/releases" --console "$TMP/pri.console" \
    "$TMP/g.cfg" $PORT > "$TMP/pri.log" 2>&1 & PRI=$!; PIDS+=($PRI)
kv 1 1 "INCR a" > /dev/null
cmds=(); for _ in $(seq 1 80); do cmds+=("INCR a"); done
for c in 2 3; do kv "$c" 1 "${cmds[@]}" > /dev/null & done
wait_clients() { local p; for p in $(jobs -p); do [ "$p" = "$SEC" ] || [ "$p" = "$PRI" ] || wait "$p"; done; }
wait_clients
kill -INT $PRI
wait_for "$TMP/pri.log" "protection stopped after" 5
wait $SEC || true
kill -INT $PRI 2>/dev/null; wait $PRI || true
nrel=$(wc -l < "$TMP/releases"); ncom=$(wc -l < "$TMP/commits")
echo "$nrel frames released, $ncom checkpoints committed"
[ "$nrel" -ge 150 ] || { echo "too few released frames to judge"; exit 1; }
# commits: time epoch (ascending); releases: time produced released_by
sort -k1,1 -s <(awk '{print $2, "C", $3}' "$TMP/commits") \
    <(awk '{print $2, "R", $3, $4}' "$TMP/releases") | sort -n -k1,1 -s | awk '
    $2 == "C" { if ($3 > committed) committed = $3; next }
    {
        n++
        if ($3 > $4) { bad++; if (bad < 5) print "frame of epoch " $3 " released by the ack of earlier epoch " $4 }
        else if ($4 > committed) { bad++; if (bad < 5) print "frame released for epoch " $4 " while the secondary had committed only " committed }
        lag += $4 - $3
    }
    END { printf "checked %d frames: %d violations; mean epochs between production and release %.2f\n", n, bad, lag / n
          exit bad > 0 }'
