#!/usr/bin/env bash
# Output commit, audited on the wire: while clients load the protected
# guest's key-value service, wirecap records every frame that crosses the
# primary's TAP (kernel timestamps, CLOCK_MONOTONIC) and the secondary logs
# every commit (epoch, time, written before its ack).  The primary's
# release log is used only for the epoch that produced each frame, matched
# to the capture by order and length; when a frame left is judged by the
# capture alone.  Checked:
#  1. every frame the guest sent left the primary after the secondary had
#     logged the commit of the epoch that produced it;
#  2. every reply's epoch is later than the last commit logged before its
#     request crossed the wire (the guest can only have answered after the
#     checkpoint that followed): the primary's epochs are not understated.
. "$ROOT/tests/lib/kvm.sh"
ns_setup tapp taps
PORT=127.0.0.1:7791
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=5000 dirty_wss=1024" 2
ip netns exec "$NS" "$BUILD/tests/wirecap" tapp "$TMP/wire" > "$TMP/cap.log" 2>&1 & CAP=$!; PIDS+=($CAP)
wait_for "$TMP/cap.log" "capturing on tapp" 5
ip netns exec "$NS" "$REMUS" receive --listen $PORT --tap taps \
    --commit-log "$TMP/commits" > "$TMP/sec.log" 2>&1 & SEC=$!; PIDS+=($SEC)
ip netns exec "$NS" "$REMUS" protect -i 30 --progress 0 \
    --release-log "$TMP/releases" --console "$TMP/pri.console" \
    "$TMP/g.cfg" $PORT > "$TMP/pri.log" 2>&1 & PRI=$!; PIDS+=($PRI)
kv 1 1 "INCR a" > /dev/null
cmds=(); for _ in $(seq 1 80); do cmds+=("INCR a"); done
for c in 2 3; do kv "$c" 1 "${cmds[@]}" > /dev/null & done
wait_clients() { local p; for p in $(jobs -p); do [ "$p" = "$SEC" ] || [ "$p" = "$PRI" ] || [ "$p" = "$CAP" ] || wait "$p"; done; }
wait_clients
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
# Events, one a line: TIME F EPOCH [CLIENT-PORT REQ] (a frame from the
# guest; a reply names its request), TIME Q CLIENT-PORT REQ (a request to
# the guest), TIME C EPOCH (a commit).  Releases: 'release NS PRODUCED
# RELEASED_BY BYTES' in the order the primary wrote the frames.  Wire:
# 'in|out NS BYTES [udp SPORT DPORT PAYLOAD]'; a request's payload is
# 'CLIENT-ID REQ CMD...', a reply's 'REQ OK ...' (guest/PROTOCOL.md).
awk 'FILENAME == ARGV[1] { epoch[++nrel] = $3; len[nrel] = $5; next }
    $1 == "in" {
        n++
        if (n > nrel) { print "frame " n " from the guest (" $3 " bytes) crossed the wire but is not in the release log"; exit 1 }
        if ($3 != len[n]) { print "frame " n " from the guest has " $3 " bytes on the wire, " len[n] " in the release log: they disagree"; exit 1 }
        print $2, "F", epoch[n], (($4 == "udp" && $5 == 7000) ? $6 " " $7 : "")
        next
    }
    $1 == "out" && $4 == "udp" && $6 == 7000 { print $2, "Q", $5, $8 }
    ' "$TMP/releases" "$TMP/wire" > "$TMP/events" || { cat "$TMP/events"; exit 1; }
awk '{ print $2, "C", $3 }' "$TMP/commits" >> "$TMP/events"
sort -n -k1,1 -s "$TMP/events" | awk '
    $2 == "C" { if ($3 > committed) committed = $3; at[$3] = $1; next }
    $2 == "Q" { if (!(($3 " " $4) in asked)) asked[$3 " " $4] = committed + 0; next }
    {
        n++
        if ($3 > committed) {
            bad++
            if (bad < 5) print "a frame of epoch " $3 " left the primary at " $1 " while the secondary had committed only epoch " committed + 0
        } else {
            slack = $1 - at[$3]
            if (!timed++ || slack < minslack) minslack = slack
        }
        if (NF < 5) next
        replies++
        if (!(($4 " " $5) in asked)) {
            bad++
            if (bad < 5) print "a reply to request " $5 " of client port " $4 " whose request never crossed the wire"
        } else if ($3 <= asked[$4 " " $5]) {
            bad++
            if (bad < 5) print "the reply to request " $5 " of client port " $4 " is logged as produced in epoch " $3 " but its request reached the guest after the commit of epoch " asked[$4 " " $5]
        }
    }
    END {
        printf "checked %d frames on the wire (%d replies): %d violations; the earliest left %.3f ms after its commit\n", n, replies, bad, minslack / 1e6
        if (replies < 150) { print "too few replies on the wire to judge"; exit 1 }
        exit bad > 0
    }'
