#!/usr/bin/env bash
# Liveness of a protection pair (issue #16):
#  1. a secondary that stops reading never hangs the primary: a relay that
#     stalls both connections without closing them, a SIGSTOPped
#     secondary, and SIGTERM twice during a stall.  The primary declares
#     the secondary lost within the heartbeat timeout (plus the send
#     deadline), the VM runs on UNPROTECTED with its output released,
#     `remus status` stops saying "protecting", and the signals end the
#     process.
#  2. timing is negotiated in the handshake (see the part's header);
#     1d: only the heartbeat tells: the primary's control messages stop
#     while checkpoints and acks still flow; the secondary fails over by
#     the heartbeat timeout.  1e: only the stream stalls, the heartbeats
#     go on: the secondary waits and never takes over (no second live
#     VM); the primary gives it up and tells it.
#  3. (clocks: tests/integration/clock_lint.sh)
#  4. a checkpoint bigger than the secondary's buffer does not fail over.
. "$ROOT/tests/lib/kvm.sh"
ns_setup tapp taps
P=127.0.0.1:7830 PS=127.0.0.1:7831
# Generous: ASan builds on a loaded 2-core host.
HB="--heartbeat 100 --heartbeat-timeout 2000"
# Every checkpoint rewrites 3,000 pages (12 MiB): more than the socket
# buffers a stalled stream leaves, so the primary (-u: uncompressed)
# blocks in the write.
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=0 dirty_wss=3000" 1

pstate() { grep -o '"state": "[a-z-]*"' "$REMUS_RUN_DIR/tguest.primary.status.json" 2>/dev/null || true; }
# lost_unprotected LOG: the primary declared the secondary lost, runs on
# unprotected, says so in its status, and its output flows again.
lost_unprotected() {
    wait_for "$1" "UNPROTECTED" 20 || { echo "the primary never declared the secondary lost"; exit 1; }
    grep -q "secondary lost" "$1" || { echo "no 'secondary lost' reason"; cat "$1"; exit 1; }
    st=$(pstate)
    [ "$st" = '"state": "unprotected"' ] || { echo "status says $st after the loss"; exit 1; }
}

# -- 1a. a relay that stops reading both connections ------------------------
scenario "1a. a relay that stops reading both connections"
ip netns exec "$NS" "$REMUS" receive --listen $PS --tap taps $HB \
    --digest-every 1 --digest-file "$TMP/sa.digests" > "$TMP/sa.log" 2>&1 & SEC=$!; PIDS+=($SEC)
# (the relay stalls once $TMP/stall-a exists: after two checkpoints)
ip netns exec "$NS" "$BUILD/tests/tcpmangle" 7830 7831 stall "@$TMP/stall-a" \
    > "$TMP/mangle-a.log" 2>&1 & MANGLE=$!; PIDS+=($MANGLE)
sleep 0.2
ip netns exec "$NS" "$REMUS" protect -i 20 -u $HB --progress 0 "$TMP/g.cfg" $P \
    > "$TMP/pa.log" 2>&1 & PRI=$!; PIDS+=($PRI)
wait_until 60 "two checkpoints replicated" lines_at_least "$TMP/sa.digests" 2
touch "$TMP/stall-a"
wait_for "$TMP/mangle-a.log" "stalled" 30
[ "$(wc -l < "$TMP/sa.digests")" -ge 2 ] || { echo "the stall came before protection ran"; cat "$TMP/pa.log"; exit 1; }
lost_unprotected "$TMP/pa.log"
# The secondary, hearing nothing on either connection, fails over too (no
# quorum here; 1e's negative control): stop it, then the primary's guest
# must answer (its held output was released).
wait_for "$TMP/sa.log" "FAILOVER" 20 || { echo "1a: the secondary did not take over"; exit 1; }
kill -9 $SEC; wait $SEC 2>/dev/null || true
kv 1 1 "INCR a" | grep -q "^1 OK 1 " || { echo "the primary's output stays held"; exit 1; }
kill -TERM $PRI; sleep 0.3; kill -TERM $PRI
gone $PRI 10 || { echo "SIGTERM twice did not end the primary"; exit 1; }
wait $PRI 2>/dev/null || true
kill -9 $MANGLE; wait $MANGLE 2>/dev/null || true
echo "1a stalled relay: $(grep -o 'secondary lost.*' "$TMP/pa.log" | head -1)"

# -- 1b. a SIGSTOPped secondary ------------------------------------------------
scenario "1b. a SIGSTOPped secondary"
ip netns exec "$NS" "$REMUS" receive --listen $PS --tap taps $HB \
    --digest-every 1 --digest-file "$TMP/sb.digests" > "$TMP/sb.log" 2>&1 & SEC=$!; PIDS+=($SEC)
ip netns exec "$NS" "$REMUS" protect -i 20 -u $HB --progress 0 "$TMP/g.cfg" $PS \
    > "$TMP/pb.log" 2>&1 & PRI=$!; PIDS+=($PRI)
wait_until 30 "three digests from the secondary" lines_at_least "$TMP/sb.digests" 3
[ "$(pstate)" = '"state": "protecting"' ] || { echo "not protecting: $(pstate)"; cat "$TMP/pb.log"; exit 1; }
kill -STOP $SEC
lost_unprotected "$TMP/pb.log"
kv 1 2 "INCR b" | grep -q "^2 OK 1 " || { echo "the primary's output stays held"; exit 1; }
kill -INT $PRI; sleep 0.3; kill -INT $PRI
gone $PRI 10 || { echo "SIGINT twice did not end the primary"; exit 1; }
wait $PRI 2>/dev/null || true
kill -9 $SEC; wait $SEC 2>/dev/null || true
echo "1b stopped secondary: $(grep -o 'secondary lost.*' "$TMP/pb.log" | head -1)"

# -- 1c. SIGTERM twice while the primary is blocked on a stalled stream -------
scenario "1c. SIGTERM twice while the primary is blocked on a stalled stream"
ip netns exec "$NS" "$REMUS" receive --listen $PS --tap taps \
    --heartbeat 100 --heartbeat-timeout 3000 > "$TMP/sc.log" 2>&1 & SEC=$!; PIDS+=($SEC)
ip netns exec "$NS" "$BUILD/tests/tcpmangle" 7830 7831 stall 4000 \
    > "$TMP/mangle-c.log" 2>&1 & MANGLE=$!; PIDS+=($MANGLE)
sleep 0.2
ip netns exec "$NS" "$REMUS" protect -i 20 -u --heartbeat 100 --heartbeat-timeout 3000 \
    --progress 0 "$TMP/g.cfg" $P > "$TMP/pc.log" 2>&1 & PRI=$!; PIDS+=($PRI)
wait_for "$TMP/mangle-c.log" "stalled" 30
sleep 0.5
kill -TERM $PRI; sleep 0.3; kill -TERM $PRI
gone $PRI 15 || { echo "SIGTERM twice during a stall did not end the primary"; cat "$TMP/pc.log"; exit 1; }
wait $PRI 2>/dev/null || true
kill -9 $SEC $MANGLE; wait $SEC $MANGLE 2>/dev/null || true
echo "1c signals during a stall: the primary ended"

# -- 1d. the primary's control messages stop, checkpoints still flow ---------
scenario "1d. the primary's control messages stop, checkpoints still flow"
# Only the heartbeat can tell: the stream and the acks go on, the
# secondary hears nothing else from the primary.  It must declare the
# primary lost by the heartbeat timeout (proto/liveness.c) and fail over.
ip netns exec "$NS" "$REMUS" receive --listen $PS --tap taps $HB \
    --digest-every 1 --digest-file "$TMP/sd.digests" > "$TMP/sd.log" 2>&1 & SEC=$!; PIDS+=($SEC)
ip netns exec "$NS" "$BUILD/tests/tcpmangle" 7830 7831 ctl-mute 1000 \
    > "$TMP/mangle-d.log" 2>&1 & MANGLE=$!; PIDS+=($MANGLE)
sleep 0.2
ip netns exec "$NS" "$REMUS" protect -i 20 $HB --progress 0 "$TMP/g.cfg" $P \
    > "$TMP/pd.log" 2>&1 & PRI=$!; PIDS+=($PRI)
wait_for "$TMP/mangle-d.log" "muted" 30
wait_until 30 "the secondary's failover" in_file "$TMP/sd.log" FAILOVER ||
    { echo "the secondary never noticed the silent primary"; tail -5 "$TMP/sd.log"; exit 1; }
grep -q "FAILOVER: no message from the primary for 2000 ms (heartbeat timeout)" "$TMP/sd.log" ||
    { echo "the secondary failed over for another reason: $(grep FAILOVER "$TMP/sd.log")"; exit 1; }
kill -9 $PRI $SEC $MANGLE; wait $PRI $SEC $MANGLE 2>/dev/null || true
echo "1d silent control channel: $(grep -o 'FAILOVER.*' "$TMP/sd.log" | cut -c1-100)"

# -- 1e. only the stream stalls; the primary's heartbeats go on ----------------
scenario "1e. only the stream stalls; the primary's heartbeats go on"
# A stuck checkpoint, not a dead primary: the secondary waits (it says so)
# and never takes over; the primary, with no acknowledgement within its
# heartbeat timeout, gives its secondary up and tells it; the secondary
# discards its replica and exits 0: one VM runs, the primary's.  1a (both
# connections stalled: the secondary takes over) is its negative control.
# The secondary's timeout (1 s) is shorter than the primary's (4 s): its
# stream goes silent first, and it must wait, not take over, until the
# primary gives it up (with equal timeouts either may come first).
# The stream stalls after two checkpoints (the relay waits for
# $TMP/stall-e): the secondary has a replica to discard.
ip netns exec "$NS" "$REMUS" receive --listen $PS --tap taps \
    --heartbeat 100 --heartbeat-timeout 1000 \
    --digest-every 1 --digest-file "$TMP/se.digests" \
    > "$TMP/se.log" 2>&1 & SEC=$!; PIDS+=($SEC)
ip netns exec "$NS" "$BUILD/tests/tcpmangle" 7830 7831 stream-stall "@$TMP/stall-e" \
    > "$TMP/mangle-e.log" 2>&1 & MANGLE=$!; PIDS+=($MANGLE)
sleep 0.2
ip netns exec "$NS" "$REMUS" protect -i 20 -u --heartbeat 100 --heartbeat-timeout 4000 \
    --progress 0 "$TMP/g.cfg" $P > "$TMP/pe.log" 2>&1 & PRI=$!; PIDS+=($PRI)
wait_until 60 "two checkpoints replicated" lines_at_least "$TMP/se.digests" 2
touch "$TMP/stall-e"
wait_for "$TMP/mangle-e.log" "stalled the stream" 30
wait_for "$TMP/se.log" "waiting (not taking over)" 10 ||
    { echo "1e: the secondary did not see a live primary behind a silent stream"; exit 1; }
lost_unprotected "$TMP/pe.log"
rc=0; wait_exit $SEC 15 || rc=$?
[ "$rc" = 0 ] || { cat "$TMP/se.log"; echo "1e: the secondary exited $rc (want 0)"; exit 1; }
grep -q "the primary stopped protection: the primary gave up its secondary" "$TMP/se.log" ||
    { cat "$TMP/se.log"; echo "1e: the secondary was not told"; exit 1; }
if grep -q "FAILOVER\|resumed from checkpoint" "$TMP/se.log"; then
    cat "$TMP/se.log"; echo "1e: the secondary took over from a live primary"; exit 1
fi
kv 5 1 "INCR e" | grep -q "^1 OK 1 " || { echo "1e: the primary's guest does not answer"; exit 1; }
kill -INT $PRI; sleep 0.3; kill -INT $PRI 2>/dev/null || true
gone $PRI 10 || { echo "1e: SIGINT twice did not end the primary"; exit 1; }
wait $PRI 2>/dev/null || true
kill -9 $MANGLE 2>/dev/null || true; wait $MANGLE 2>/dev/null || true
echo "1e stalled stream, live primary: $(grep -o 'no checkpoint data.*' "$TMP/se.log" | head -1 | cut -c1-110)"

# -- 2. timing is negotiated ---------------------------------------------------
scenario "2. timing is negotiated"
#  a. -i 1500 (and a 200 ms heartbeat) against a receiver with no timeout
#     given: protect's default and the receiver's derive from the interval
#     and heartbeat (1500 + 4 x 200 ms); the pair runs (no failover between
#     checkpoints 1.5 s apart) and stops cleanly;
#  b. an explicit receiver timeout that cannot work with -i 1500 is refused
#     on both sides, the message naming both values.
guest_cfg "$TMP/g2.cfg" tapp "dirty_rate=2000 dirty_wss=500" 1
ip netns exec "$NS" "$REMUS" receive --listen $PS --tap taps \
    --digest-every 1 --digest-file "$TMP/s2a.digests" > "$TMP/s2a.log" 2>&1 & SEC=$!; PIDS+=($SEC)
ip netns exec "$NS" "$REMUS" protect -i 1500 --heartbeat 200 --progress 0 "$TMP/g2.cfg" $PS \
    > "$TMP/p2a.log" 2>&1 & PRI=$!; PIDS+=($PRI)
four_or_failover() { lines_at_least "$TMP/s2a.digests" 4 || in_file "$TMP/s2a.log" FAILOVER; }
wait_until 20 "four checkpoints (or a failover)" four_or_failover || true   # judged below
! grep -q FAILOVER "$TMP/s2a.log" || { echo "-i 1500 made a healthy pair fail over"; cat "$TMP/s2a.log"; exit 1; }
[ "$(cat "$TMP/s2a.digests" | wc -l)" -ge 4 ] || { echo "fewer than 4 checkpoints with -i 1500"; cat "$TMP/s2a.log"; exit 1; }
grep -q "heartbeat 100/2300 ms (the primary's 200/2300 ms)" "$TMP/s2a.log" || { echo "the receiver did not derive its timeout"; cat "$TMP/s2a.log"; exit 1; }
kill -INT $PRI
wait_for "$TMP/p2a.log" "protection stopped after" 10
wait $SEC || { echo "secondary did not exit 0 after a clean stop"; cat "$TMP/s2a.log"; exit 1; }
kill -INT $PRI; wait $PRI || true

ip netns exec "$NS" "$REMUS" receive --listen $PS --tap taps --heartbeat-timeout 1000 \
    > "$TMP/s2b.log" 2>&1 & SEC=$!; PIDS+=($SEC)
ip netns exec "$NS" "$REMUS" protect -i 1500 --heartbeat 200 --progress 0 "$TMP/g2.cfg" $PS \
    > "$TMP/p2b.log" 2>&1 < /dev/null & PRI=$!; PIDS+=($PRI)
wait_for "$TMP/p2b.log" "refused" 10
# The secondary refuses that primary and goes on waiting (a refused peer
# never ends it): it must have said why and replicated nothing.
wait_for "$TMP/s2b.log" "interval 1500 ms and heartbeat 200 ms" 10
if grep -q "replicating" "$TMP/s2b.log"; then echo "the receiver accepted timing that cannot work"; exit 1; fi
kill $SEC 2>/dev/null || true; wait $SEC 2>/dev/null || true
for f in "$TMP/p2b.log" "$TMP/s2b.log"; do
    grep -q "interval 1500 ms and heartbeat 200 ms.*at least 2100 ms.*secondary's is 1000 ms" "$f" ||
        { echo "$f does not name both values:"; cat "$f"; exit 1; }
done
kill -9 $PRI; wait $PRI 2>/dev/null || true
echo "2 timing: $(grep -o 'timing cannot work.*' "$TMP/p2b.log" | head -1)"

# -- 4. checkpoints bigger than the secondary's buffer -------------------------
scenario "4. checkpoints bigger than the secondary's buffer"
# A 1 MiB buffer (--buffer 1) against checkpoints of up to 12 MiB (-u): the
# secondary announces its buffer, the primary shortens its epochs, what
# still does not fit is staged on the secondary's disk and committed whole.
# No failover, and the replica's memory matches the primary's.
ip netns exec "$NS" "$REMUS" receive --listen $PS --tap taps --buffer 1 $HB \
    --digest-every 2 --digest-file "$TMP/s4.digests" > "$TMP/s4.log" 2>&1 & SEC=$!; PIDS+=($SEC)
ip netns exec "$NS" "$REMUS" protect -i 20 -u $HB --progress 0 --digest-every 2 \
    --digest-file "$TMP/p4.digests" "$TMP/g.cfg" $PS > "$TMP/p4.log" 2>&1 & PRI=$!; PIDS+=($PRI)
eight_or_failover() { lines_at_least "$TMP/s4.digests" 8 || in_file "$TMP/s4.log" FAILOVER; }
wait_until 30 "eight digests (or a failover)" eight_or_failover || true   # judged below
! grep -q FAILOVER "$TMP/s4.log" || { echo "an oversize checkpoint made the pair fail over"; cat "$TMP/s4.log"; exit 1; }
grep -q "its checkpoint buffer 1 MiB" "$TMP/p4.log" || { echo "the primary did not learn the buffer"; cat "$TMP/p4.log"; exit 1; }
grep -q "its buffer is 1024 KiB: epochs shortened" "$TMP/p4.log" || { echo "the primary did not shorten its epochs"; cat "$TMP/p4.log"; exit 1; }
grep -q "exceeds the buffer of 1048576 bytes: staging the rest on disk" "$TMP/s4.log" ||
    { echo "no checkpoint was staged on disk"; cat "$TMP/s4.log"; exit 1; }
kill -INT $PRI
wait_for "$TMP/p4.log" "protection stopped after" 10
wait $SEC || { echo "secondary did not exit 0 after a clean stop"; cat "$TMP/s4.log"; exit 1; }
kill -INT $PRI; wait $PRI || true
check_convergence "$TMP/p4.digests" "$TMP/s4.digests" 4 "4 oversize"
echo "4 oversize: $(grep -o 'epochs shortened.*' "$TMP/p4.log" | head -1)"
