#!/usr/bin/env bash
# Output commit, audited on the wire: while clients load the protected
# guest's key-value service and a ping floods it (its echo requests arrive
# at every phase of the checkpoint cycle, also while a checkpoint is on
# its way to the secondary), wirecap records every frame that crosses the
# primary's TAP (kernel timestamps, CLOCK_MONOTONIC) and the secondary logs
# every commit (epoch, time, written before its ack).  The primary's
# release log is used only for the epoch that produced each frame, matched
# to the capture by order and length; when a frame left is judged by the
# capture alone.  Checked:
#  1. every frame the guest sent left the primary after the secondary had
#     logged the commit of the epoch that produced it;
#  2. every reply's epoch (key-value or echo reply) is later than the last
#     commit logged before its request crossed the wire (that checkpoint
#     was taken before the guest saw the request): the primary's epochs are
#     not understated.
. "$ROOT/tests/lib/kvm.sh"
ns_setup tapp taps
PORT=127.0.0.1:7791
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=5000 dirty_wss=1024" 2
ip netns exec "$NS" "$BUILD/tests/wirecap" tapp "$TMP/wire" > "$TMP/cap.log" 2>&1 & CAP=$!; PIDS+=($CAP)
wait_for "$TMP/cap.log" "capturing on tapp" 5
# A long heartbeat timeout: a loaded machine may stall either side for a
# second, and a lost secondary ends the audit.
HB="--heartbeat-timeout 5000"
ip netns exec "$NS" "$REMUS" receive --listen $PORT --tap taps $HB \
    --commit-log "$TMP/commits" > "$TMP/sec.log" 2>&1 & SEC=$!; PIDS+=($SEC)
ip netns exec "$NS" "$REMUS" protect -i 30 --progress 0 $HB \
    --release-log "$TMP/releases" --console "$TMP/pri.console" \
    "$TMP/g.cfg" $PORT > "$TMP/pri.log" 2>&1 & PRI=$!; PIDS+=($PRI)
kv 1 1 "INCR a" > /dev/null
cmds=(); for _ in $(seq 1 80); do cmds+=("INCR a"); done
for c in 2 3; do kv "$c" 1 "${cmds[@]}" > /dev/null & done
{ NSX ping -q -i 0.005 -c 600 10.77.0.2 > "$TMP/ping.log" ||
    { cat "$TMP/ping.log"; echo "the guest answered no ping"; exit 1; }; } &
wait_load() { local p; for p in $(jobs -p); do [ "$p" = "$SEC" ] || [ "$p" = "$PRI" ] || [ "$p" = "$CAP" ] || wait "$p"; done; }
wait_load
# Stop the capture while protection still holds output: every captured
# frame from the guest is then one the release log has.
kill -INT $CAP
wait $CAP || { echo "the capture failed:"; cat "$TMP/cap.log"; exit 1; }
cat "$TMP/cap.log"
kill -INT $PRI
wait_for "$TMP/pri.log" "protection stopped after" 5
wait $SEC || true
kill -INT $PRI 2>/dev/null; wait $PRI || true
echo "$(grep -c '^in ' "$TMP/wire") frames from the guest captured," \
     "$(wc -l < "$TMP/releases") released, $(wc -l < "$TMP/commits") checkpoints committed"
# Events, one a line: 'TIME F EPOCH [KEY]' a frame from the guest (a reply
# with the KEY of its request), 'TIME Q KEY' a request to the guest,
# 'TIME C EPOCH' a commit.  KEY: 'kv CLIENT-PORT REQ' or 'echo ID SEQ'.
# Releases: 'release NS PRODUCED RELEASED_BY BYTES' in the order the
# primary wrote the frames.  Wire: 'in|out NS BYTES [udp SPORT DPORT
# PAYLOAD | icmp TYPE ID SEQ]'; a key-value request's payload is
# 'CLIENT-ID REQ CMD...', a reply's 'REQ OK ...' (guest/PROTOCOL.md).
awk 'FILENAME == ARGV[1] { epoch[++nrel] = $3; len[nrel] = $5; next }
    $1 == "in" {
        n++
        if (n > nrel) { print "frame " n " from the guest (" $3 " bytes) crossed the wire but is not in the release log" > "/dev/stderr"; exit 1 }
        if ($3 != len[n]) { print "frame " n " from the guest has " $3 " bytes on the wire, " len[n] " in the release log: they disagree" > "/dev/stderr"; exit 1 }
        key = ""
        if ($4 == "udp" && $5 == 7000) key = "kv " $6 " " $7
        if ($4 == "icmp" && $5 == 0) key = "echo " $6 " " $7
        print $2, "F", epoch[n], key
        next
    }
    $4 == "udp" && $6 == 7000 { print $2, "Q", "kv", $5, $8 }
    $4 == "icmp" && $5 == 8 { print $2, "Q", "echo", $6, $7 }
    ' "$TMP/releases" "$TMP/wire" > "$TMP/events"
awk '{ print $2, "C", $3 }' "$TMP/commits" >> "$TMP/events"
sort -n -k1,1 -s "$TMP/events" | awk '
    $2 == "C" { if ($3 > committed) committed = $3; at[$3] = $1; next }
    $2 == "Q" { k = $3 " " $4 " " $5; if (!(k in asked)) asked[k] = committed + 0; next }
    {
        n++
        if ($3 > committed) {
            early++
            if (++bad < 5) print "a frame of epoch " $3 " left the primary at " $1 " while the secondary had committed only epoch " committed + 0
        } else {
            slack = $1 - at[$3]
            if (!timed++ || slack < minslack) minslack = slack
        }
        if (NF < 6) next
        k = $4 " " $5 " " $6
        replies[$4]++
        if (!(k in asked)) {
            if (++bad < 5) print "a reply (" k ") to a request that never crossed the wire"
        } else if ($3 <= asked[k]) {
            understated++
            if (++bad < 5) print "a reply (" k ") is logged as produced in epoch " $3 " but its request reached the guest after the commit of epoch " asked[k]
        }
    }
    END {
        printf "checked %d frames on the wire (%d key-value and %d echo replies): %d violations (%d left before their epoch was committed, %d replies logged in an epoch before their request); the closest call: a frame that left %.3f ms after the commit of its epoch\n", n, replies["kv"], replies["echo"], bad, early, understated, minslack / 1e6
        if (replies["kv"] < 150 || replies["echo"] < 300) { print "too few replies on the wire to judge"; exit 1 }
        exit bad > 0
    }'
