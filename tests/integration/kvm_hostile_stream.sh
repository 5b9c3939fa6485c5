#!/usr/bin/env bash
# The real secondary under a stream that goes bad mid-protection: one byte
# flipped, or the stream cut in the middle of a checkpoint.  The secondary
# discards the open checkpoint, stays on the last committed one, says why,
# and the guest it resumes has every acknowledged operation.
. "$ROOT/tests/lib/kvm.sh"
ns_setup tapp taps
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=3000 dirty_wss=500" 1
for mode in corrupt truncate; do
    # --insecure: what is tested is the stream reader on plaintext records
    # (with a key a damaged byte fails authentication first: kvm_auth.sh).
    ip netns exec "$NS" "$REMUS" receive --insecure --listen 127.0.0.1:7791 --tap taps \
        > "$TMP/sec-$mode.log" 2>&1 & SEC=$!; PIDS+=($SEC)
    ip netns exec "$NS" "$BUILD/tests/tcpmangle" 7790 7791 $mode 1500 \
        > "$TMP/mangle-$mode.log" 2>&1 & PIDS+=($!)
    sleep 0.2
    ip netns exec "$NS" "$REMUS" protect --insecure -i 20 --progress 0 "$TMP/g.cfg" \
        127.0.0.1:7790 > "$TMP/pri-$mode.log" 2>&1 & PRI=$!; PIDS+=($PRI)
    # Acknowledged increments before and after the damage.  Once the
    # secondary has failed over, the primary (no quorum arbiter here) runs
    # on unprotected and answers too: a reply that may have come after the
    # primary's "runs on UNPROTECTED" line proves nothing about the replica.
    acked=$(acked_while_protected 50 c "$TMP/pri-$mode.log")
    wait_for "$TMP/sec-$mode.log" "FAILOVER" 15
    grep -q "${mode}ed" "$TMP/mangle-$mode.log" || grep -q "$mode" "$TMP/mangle-$mode.log"
    kill -9 $PRI 2>/dev/null || true      # the primary would run on unprotected
    wait $PRI 2>/dev/null || true
    reason=$(grep -o "FAILOVER: .*" "$TMP/sec-$mode.log")
    echo "$mode: $reason"
    case $mode in
    corrupt)  echo "$reason" | grep -Eq "digest mismatch|byte [0-9]+:" ;;
    truncate) echo "$reason" | grep -Eq "truncated|ends at byte|no data|no message" ;;
    esac
    out=$(kv 50 100 "GET c")
    echo "$mode: replica says $out after $acked acknowledged increments"
    val=$(echo "$out" | awk '{print $3}')
    [ "$val" -ge "$acked" ] || { echo "acknowledged increments were lost"; exit 1; }
    kill -TERM $SEC; wait $SEC || true
done
