#!/usr/bin/env bash
# The real secondary under a stream that goes bad mid-protection: one byte
# flipped, or the stream cut in the middle of a checkpoint.  The secondary
# discards the open checkpoint and says why.  What it does next depends on
# the primary, which only the control channel can tell:
#  - alive (its heartbeats go on): the secondary does NOT take over (that
#    would be a second live copy of the VM), tells the primary, and exits
#    1 naming the stream's failure; the primary runs on unprotected, its
#    guest with every increment; the replica never ran;
#  - killed as the stream goes bad: the replica takes over from its last
#    committed checkpoint, with every acknowledged increment.
# Each fate is the other's negative control: the same damage, the opposite
# verdict.
. "$ROOT/tests/lib/kvm.sh"
ns_setup tapp taps
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=3000 dirty_wss=500" 1
HB="--heartbeat 100 --heartbeat-timeout 3000"

# hostile MODE FATE (alive|killed)
hostile() {
    local mode=$1 fate=$2 tag=$1-$2 acked=0 i reason out val rc killer
    # --insecure: what is tested is the stream reader on plaintext records
    # (with a key a damaged byte fails authentication first: kvm_auth.sh).
    ip netns exec "$NS" "$REMUS" receive --insecure --listen 127.0.0.1:7791 --tap taps $HB \
        > "$TMP/sec-$tag.log" 2>&1 & SEC=$!; PIDS+=($SEC)
    ip netns exec "$NS" "$BUILD/tests/tcpmangle" 7790 7791 $mode 1500 \
        > "$TMP/mangle-$tag.log" 2>&1 & MANGLE=$!; PIDS+=($MANGLE)
    sleep 0.2
    ip netns exec "$NS" "$REMUS" protect --insecure -i 20 $HB --progress 0 "$TMP/g.cfg" \
        127.0.0.1:7790 > "$TMP/pri-$tag.log" 2>&1 & PRI=$!; PIDS+=($PRI)
    if [ "$fate" = killed ]; then
        # kill -9 of the primary as soon as the relay damaged the stream:
        # well within the heartbeat timeout the secondary waits for.
        ( while ! grep -q "tcpmangle: ${mode}" "$TMP/mangle-$tag.log"; do sleep 0.02; done
          kill -9 $PRI ) & killer=$!; PIDS+=($killer)
    fi
    # Increments acknowledged while protected: before the damage.
    for i in $(seq 1 200); do
        if grep -q "tcpmangle: ${mode}" "$TMP/mangle-$tag.log"; then break; fi
        kv 50 $i "INCR c" > /dev/null || break
        acked=$i
    done
    grep -q "tcpmangle: ${mode}" "$TMP/mangle-$tag.log" ||
        { echo "$tag: the relay never damaged the stream"; exit 1; }
    [ "$acked" -ge 3 ] || { echo "$tag: only $acked increments before the damage"; exit 1; }
    if [ "$fate" = alive ]; then
        rc=0; wait_exit $SEC 20 || rc=$?
        [ "$rc" = 1 ] || { cat "$TMP/sec-$tag.log"; echo "$tag: the secondary exited $rc (want 1)"; exit 1; }
        if grep -q "FAILOVER\|resumed from checkpoint" "$TMP/sec-$tag.log"; then
            cat "$TMP/sec-$tag.log"; echo "$tag: the secondary took over from a live primary"; exit 1
        fi
        reason=$(grep -o "the checkpoint stream failed.*NOT taking over.*" "$TMP/sec-$tag.log") ||
            { cat "$TMP/sec-$tag.log"; echo "$tag: no verdict naming the stream's failure"; exit 1; }
        wait_for "$TMP/pri-$tag.log" "UNPROTECTED" 10
        grep -q "the secondary stopped the protection" "$TMP/pri-$tag.log" ||
            { cat "$TMP/pri-$tag.log"; echo "$tag: the primary was not told"; exit 1; }
        out=$(kv 50 1000 "GET c")
        kv 50 1001 "INCR c" | grep -q "^1001 OK " || { echo "$tag: the primary's guest stopped"; exit 1; }
        alive $PRI || { echo "$tag: the primary died"; exit 1; }
        kill -INT $PRI; wait_exit $PRI 10 || true
        kill -INT $PRI 2>/dev/null || true; wait $PRI 2>/dev/null || true
        who="the primary"
    else
        wait_for "$TMP/sec-$tag.log" "FAILOVER" 15
        wait $killer 2>/dev/null || true
        reason=$(grep -o "FAILOVER: .*" "$TMP/sec-$tag.log")
        out=$(kv 50 1000 "GET c")
        who="the replica"
    fi
    case $mode in
    corrupt)  grep -Eq "digest mismatch|byte [0-9]+:" "$TMP/sec-$tag.log" ;;
    truncate) grep -Eq "truncated|ends at byte" "$TMP/sec-$tag.log" ;;
    esac || { cat "$TMP/sec-$tag.log"; echo "$tag: the secondary did not name the damage"; exit 1; }
    echo "$tag: $(cut -c1-160 <<< "$reason")"
    val=$(echo "$out" | awk '{print $3}')
    echo "$tag: $who says '$out' after $acked acknowledged increments"
    [ "$val" -ge "$acked" ] || { echo "$tag: acknowledged increments were lost"; exit 1; }
    kill -9 $MANGLE 2>/dev/null || true; wait $MANGLE 2>/dev/null || true
    kill -TERM $SEC 2>/dev/null || true; wait $SEC 2>/dev/null || true
}

for mode in corrupt truncate; do
    scenario "$mode, the primary alive"
    hostile $mode alive
    scenario "$mode, the primary killed with the damage"
    hostile $mode killed
done
echo ok
