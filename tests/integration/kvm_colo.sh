#!/usr/bin/env bash
# COLO mode (#20) on KVM, as a user runs it: `remus receive --colo` and
# `remus protect --colo`.  The replica runs between checkpoints on the
# input the primary mirrors; a reply leaves as soon as both VMs produced
# it; a checkpoint is taken when they differ (or every
# --colo-max-interval).
#  - deterministic traffic (SET/INCR/GET, and NOISE: pages written at
#    places the time stamp counter picks, which differ between the two VMs
#    while the replies do not): every request answered, no checkpoint but
#    the periodic ones;
#  - a reply that carries the guest's clock (STATS) differs every time:
#    one checkpoint per reply, and each reply still reaches the client;
#  - after every checkpoint the replica's whole memory equals the
#    primary's at the cut (digests); negative control: a replica that does
#    not send its dirty pages back (REMUS_TEST_COLO_DROP_DIRTY) fails it;
#  - kill -9 of the primary: the replica takes over from its own state,
#    every acknowledged write there; kill of the secondary: the primary
#    runs on;
#  - fallback: divergences at --colo-fallback a second switch to buffered
#    (Remus) mode for --colo-fallback-hold, then COLO again; `remus
#    status` and the metrics show the mode and the checkpoints by cause;
#    negative control: --colo-fallback 0 never switches; kill -9 of the
#    primary in buffered mode: the replica resumes from its checkpoint;
#  - a busy disk (1 MB/s against a 256 KiB disk log) asks for checkpoints
#    (a full queue) at half the log's cap; so does the replica at half its
#    disk overlay (--colo-overlay-bytes);
#  - the replica's whole memory is checked after every checkpoint it ran
#    before: one whose dirty pages are not sent back is caught at the
#    first, and protection ends without a takeover;
#  - refusals: --colo with -d (an unreplicated disk), --colo with -n, a COLO primary with a Remus secondary,
#    --compare-timeout without --colo.
. "$ROOT/tests/lib/kvm.sh"
ns_setup tapp taps tapb
PORT=127.0.0.1:7796 PORT2=127.0.0.1:7797
HB="--heartbeat 50 --heartbeat-timeout $(slow_ms 1000)"

start_pair() {   # start_pair TAG [receive env...]: logs in $TMP/TAG.*; $PRI_OPTS
    tag=$1; shift   # and $RECV_OPTS add options to protect and receive
    ip netns exec "$NS" env "$@" "$REMUS" receive --colo --listen $PORT --tap taps $HB ${RECV_OPTS:-} \
        --digest-every 1 --digest-file "$TMP/$tag.sec.dig" > "$TMP/$tag.sec.log" 2>&1 & SEC=$!; PIDS+=($SEC)
    sleep 0.3
    ip netns exec "$NS" "$REMUS" protect --colo -i 20 --progress 0 $HB \
        --colo-max-interval 1000 ${PRI_OPTS:-} --digest-every 1 --digest-file "$TMP/$tag.pri.dig" \
        --stats-file "$TMP/$tag.stats" --console "$TMP/$tag.console" \
        "$TMP/g.cfg" $PORT > "$TMP/$tag.pri.log" 2>&1 & PRI=$!; PIDS+=($PRI)
    wait_until 30 "the first checkpoint" lines_at_least "$TMP/$tag.stats" 1
}
stop_pair() {
    kill -INT $PRI 2>/dev/null || true
    wait_for "$TMP/$tag.pri.log" "protection stopped after" 10
    wait_exit $SEC 10 || { echo "the secondary did not end after a clean stop"; tail "$TMP/$tag.sec.log"; exit 1; }
    kill -INT $PRI 2>/dev/null || true; wait $PRI 2>/dev/null || true
}
checkpoints() { wc -l < "$TMP/$tag.stats"; }
by_cause() {     # by_cause TAG CAUSE: from the primary's closing COLO line
    grep -o "COLO: checkpoints asked by.*" "$TMP/$1.pri.log" |
        sed -n "s/.*a $2 \([0-9]*\).*/\1/p; s/.*the $2 \([0-9]*\).*/\1/p" | head -1
}

# A guest that also writes memory on its own clock (500 pages, 2000/s).
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=2000 dirty_wss=500" 1

# -- deterministic traffic --------------------------------------------------
scenario "deterministic traffic"
# (a replica's reply later than --compare-timeout would be a timeout's
# checkpoint: see "replies that differ")
PRI_OPTS="--compare-timeout 3000" start_pair det
before=$(checkpoints)
t0=$(date +%s%N)
out=$(kv 1 1 "SET a 5" "INCR a" "INCR a" "GET a" "INCR b" "INCR b" "GET b" \
      "INCR c" "INCR c" "INCR c" "INCR c" "INCR c" "GET c" "SET d 1" "GET d" \
      "INCR a" "INCR a" "NOISE 64" "INCR a" "INCR a" "GET a")
t1=$(date +%s%N)
echo "$out" | tail -1 | grep -q "^21 OK 11 " || { echo "wrong replies: $out"; exit 1; }
after=$(checkpoints)
secs=$(( (t1 - t0) / 1000000000 + 1 ))
echo "deterministic: 21 requests in $(( (t1 - t0) / 1000000 )) ms, $((after - before)) checkpoints meanwhile (periodic: 1 per s)"
[ $((after - before)) -le $((secs + 1)) ] ||
    { echo "deterministic traffic caused checkpoints beyond the periodic ones"; exit 1; }
# a periodic checkpoint (--colo-max-interval 1000) with a replica that ran
wait_until 10 "a periodic checkpoint" lines_at_least "$TMP/det.stats" $((after + 2))
stop_pair
grep "COLO: checkpoints asked" "$TMP/det.pri.log"
[ "$(by_cause det mismatch)" = 0 ] || { echo "a mismatch on deterministic traffic"; exit 1; }
check_convergence "$TMP/det.pri.dig" "$TMP/det.sec.dig" 2 "deterministic"

# -- a reply with the guest's clock: one checkpoint per reply ---------------
scenario "replies that differ"
# The replica's reply must arrive for the two to be compared: under ASan on
# a loaded machine it once came later than the default 20 ms, and that
# reply's checkpoint was a timeout's (CI, stop 29). What this scenario
# proves is the comparison, so frames wait up to 3 s here.
PRI_OPTS="--compare-timeout 3000" start_pair clock
kv 1 1 "INCR a" > /dev/null
for i in 1 2 3 4 5; do
    kv 1 $((i + 1)) "STATS" | grep -q "OK writes=" || { echo "STATS $i unanswered"; exit 1; }
done
kv 1 10 "GET a" | grep -q "^10 OK 1 " || { echo "the value was lost"; exit 1; }
stop_pair
grep "COLO: checkpoints asked" "$TMP/clock.pri.log"
m=$(by_cause clock mismatch)
[ "${m:-0}" -ge 5 ] || { echo "5 differing replies made ${m:-0} mismatch checkpoints"; exit 1; }
check_convergence "$TMP/clock.pri.dig" "$TMP/clock.sec.dig" 6 "replies that differ"

# -- fallback to buffered mode, and back ------------------------------------
scenario "fallback to buffered mode and back"
# Divergences at 3 a second or more: buffered (Remus) mode for 1.5 s
# (times REMUS_TEST_SLOW: the test reads the metrics meanwhile), the
# replica paused, output released at each checkpoint's ack; then COLO
# again.  `remus status` and the metrics show the mode and the causes.
PRI_OPTS="--compare-timeout 3000 --colo-fallback 3 --colo-fallback-hold $(slow_ms 1500) --metrics 127.0.0.1:9796" \
    start_pair fb
kv 1 1 "INCR f" STATS STATS STATS STATS STATS STATS "INCR f" > "$TMP/fb.out"
grep -q "^8 OK 2 " "$TMP/fb.out" || { echo "wrong replies: $(cat "$TMP/fb.out")"; exit 1; }
wait_for "$TMP/fb.pri.log" "buffered (Remus) mode from checkpoint" 10
wait_for "$TMP/fb.sec.log" "buffered (Remus) mode from checkpoint" 10
NSX curl -sSf --max-time 5 http://127.0.0.1:9796/metrics > "$TMP/fb.metrics"
"$REMUS" status > "$TMP/fb.status"
promtool check metrics < "$TMP/fb.metrics" || { cat "$TMP/fb.metrics"; exit 1; }
grep -qx 'remus_colo_buffered 1' "$TMP/fb.metrics" ||
    { echo "the metrics do not say buffered"; grep colo "$TMP/fb.metrics"; exit 1; }
grep -qx 'remus_colo_checkpoints_total{cause="mismatch"} 3' "$TMP/fb.metrics" ||
    { echo "the metrics do not count 3 mismatches"; grep colo "$TMP/fb.metrics"; exit 1; }
grep -q "COLO buffered: checkpoints by cause mismatch 3," "$TMP/fb.status" ||
    { echo "remus status does not show buffered mode"; cat "$TMP/fb.status"; exit 1; }
# buffered mode still answers (each reply after a checkpoint's ack)
kv 1 10 "INCR f" | grep -q "^10 OK 3 " || { echo "no reply in buffered mode"; exit 1; }
wait_for "$TMP/fb.pri.log" "comparing outputs again from checkpoint" 10
wait_for "$TMP/fb.sec.log" "the replica runs again from checkpoint" 10
# COLO again: deterministic traffic is compared and released, no mismatch
kv 1 20 "INCR f" "GET f" | grep -q "^21 OK 4 " || { echo "no reply after the return"; exit 1; }
wait_until 10 "the status says comparing" eval '"$REMUS" status | grep -q "COLO comparing: .*fallbacks 1;"'
stop_pair
grep "COLO: checkpoints asked" "$TMP/fb.pri.log"
[ "$(by_cause fb mismatch)" = 3 ] || { echo "not 3 mismatch checkpoints"; exit 1; }
grep -q "fallbacks to buffered mode 1, checkpoints in it [1-9]" "$TMP/fb.pri.log" ||
    { echo "no checkpoint counted in buffered mode"; exit 1; }
check_convergence "$TMP/fb.pri.dig" "$TMP/fb.sec.dig" 10 "fallback and back"
# negative control: with --colo-fallback 0 the same traffic never falls back
PRI_OPTS="--compare-timeout 3000 --colo-fallback 0" start_pair nofb
kv 1 1 "INCR f" STATS STATS STATS STATS STATS STATS "INCR f" > /dev/null
stop_pair
if grep -q "buffered (Remus) mode" "$TMP/nofb.pri.log"; then
    echo "negative control: fell back with --colo-fallback 0"; exit 1
fi
[ "$(by_cause nofb mismatch)" -ge 6 ] || { echo "negative control: fewer than 6 mismatches"; exit 1; }
echo "negative control ok: without a fallback rate every STATS was a mismatch checkpoint"

# -- the primary dies in buffered mode -----------------------------------------
scenario "the primary dies in buffered mode"
PRI_OPTS="--compare-timeout 3000 --colo-fallback 2 --colo-fallback-hold 60000" start_pair bdies
kv 1 1 "INCR z" STATS STATS STATS > /dev/null
wait_for "$TMP/bdies.sec.log" "buffered (Remus) mode from checkpoint" 10
acked=$( (kv 1 10 "INCR z" "INCR z" "INCR z" 2>/dev/null || true) |
        awk '$2 == "OK" && $3 ~ /^[0-9]+$/ {v=$3} END {print v+0}')
[ "$acked" = 4 ] || { echo "acked $acked, not 4"; exit 1; }
kill -9 $PRI; wait $PRI 2>/dev/null || true
wait_for "$TMP/bdies.sec.log" "FAILOVER" 20
grep -q "FAILOVER: .*the replica resumed from checkpoint" "$TMP/bdies.sec.log" ||
    { echo "a buffered replica must resume from its checkpoint"; grep FAILOVER "$TMP/bdies.sec.log"; exit 1; }
# (its vCPUs too: the state of the last committed checkpoint, not of its
# last run, which the memory no longer matches)
if grep -q "keeps its own vCPU state" "$TMP/bdies.sec.log"; then
    echo "the buffered replica resumed with its own (older) vCPU state"; exit 1
fi
kv 2 1 "GET z" | grep -q "^1 OK 4 " || { echo "the replica lost an acknowledged write"; tail "$TMP/bdies.sec.log"; exit 1; }
kv 2 2 "INCR z" | grep -q "^2 OK 5 " || { echo "the replica does not serve"; exit 1; }
echo "primary dies in buffered mode: $(grep -o 'FAILOVER.*' "$TMP/bdies.sec.log" | cut -c1-160)"
kill -INT $SEC; wait $SEC 2>/dev/null || true

# -- a busy disk: its log asks for checkpoints ----------------------------------
scenario "a busy disk asks for checkpoints"
# 1 MB/s of guest disk writes against a 256 KiB disk log: half of it
# unacknowledged asks for a checkpoint (a full queue) long before the
# 1 s interval, so the guest's writes never wait for the cap.
truncate -s 16M "$TMP/pri.img"; truncate -s 16M "$TMP/rep.img"
cp "$TMP/g.cfg" "$TMP/g.cfg.nodisk"; echo "disk = $TMP/pri.img" >> "$TMP/g.cfg"
RECV_OPTS="--disk $TMP/rep.img" PRI_OPTS="--compare-timeout 3000 --disk-buffer-bytes 262144" start_pair busy
kv 1 1 "DISKLOAD 2000" | grep -q "OK rate=2000" || { echo "DISKLOAD refused"; exit 1; }
sleep 2
kv 1 2 "DISKLOAD 0" | grep -q "OK rate=0" || { echo "DISKLOAD 0 refused"; exit 1; }
stop_pair
cp "$TMP/g.cfg.nodisk" "$TMP/g.cfg"
grep "COLO: checkpoints asked" "$TMP/busy.pri.log"
# How many depends on the host's pace (the lab's TCG is slow): two show
# that the ask comes again after each checkpoint.
[ "$(by_cause busy "full queue")" -ge 2 ] ||
    { echo "2 s of disk writes (1 MB/s against a 256 KiB log) asked fewer than 2 checkpoints"; exit 1; }
check_convergence "$TMP/busy.pri.dig" "$TMP/busy.sec.dig" 4 "a busy disk"

# -- the replica's disk overlay asks for checkpoints ----------------------------
scenario "the replica's overlay asks for checkpoints"
# The same 1 MB/s, the primary's log at its default cap (64 MiB: it never
# asks here), the replica's overlay at 256 KiB: at half of it the replica
# asks for a checkpoint (ColoAsk, counted as a full queue).  A write that
# finds the overlay full anyway (the checkpoint late: a slow host) waits
# for the checkpoint that empties it; no write of the replica's fails.
# Negative control: a replica that does not ask (REMUS_TEST_COLO_NO_ASK)
# fills its overlay, and its writes wait for the periodic checkpoints.
overlay_run() {   # overlay_run TAG [receive env...]
    local t=$1; shift
    RECV_OPTS="--disk $TMP/rep.img --colo-overlay-bytes 262144" \
        PRI_OPTS="--compare-timeout 3000" start_pair "$t" "$@"
    kv 1 1 "DISKLOAD 2000" | grep -q "OK rate=2000" || { echo "DISKLOAD refused"; exit 1; }
    # The secondary's status counts what its replica writes meanwhile
    # (`remus drill --colo` waits on it before its kill).
    wait_until 2 "the secondary's status to count the replica's writes" \
        eval '"$REMUS" status | grep -Eq "sectors the replica wrote since its checkpoint [1-9]"'
    sleep 2
    kv 1 2 "DISKLOAD 0" | grep -q "OK rate=0" || { echo "DISKLOAD 0 refused"; exit 1; }
    stop_pair
    if grep "COLO replica's overlay.*failed" "$TMP/$t.sec.log"; then
        echo "$t: the replica's disk writes failed"; exit 1
    fi
}
echo "disk = $TMP/pri.img" >> "$TMP/g.cfg"
overlay_run ovask
grep "COLO: checkpoints asked" "$TMP/ovask.pri.log"
grep -o "asked for [0-9]* checkpoints (its disk overlay half full)" "$TMP/ovask.sec.log"
asks=$(sed -n 's/.*the replica asked \([0-9]*\): its disk overlay.*/\1/p' "$TMP/ovask.pri.log")
# (two or more, as above: it asks again after each checkpoint)
[ "${asks:-0}" -ge 2 ] || { echo "2 s at 1 MB/s against a 256 KiB overlay: the replica asked ${asks:-0} checkpoints, not 2 or more"; exit 1; }
[ "$(by_cause ovask "full queue")" -ge 2 ] || { echo "the replica's asks made fewer than 2 checkpoints"; exit 1; }
# (how many of its writes still found it full depends on this host's pace)
echo "with the asks: $(grep -c "the COLO replica's overlay is full" "$TMP/ovask.sec.log" || true) times full"
check_convergence "$TMP/ovask.pri.dig" "$TMP/ovask.sec.dig" 4 "the overlay's asks"
overlay_run ovnoask REMUS_TEST_COLO_NO_ASK=1
grep -q "TEST MODE (REMUS_TEST_COLO_NO_ASK)" "$TMP/ovnoask.sec.log"
asks=$(sed -n 's/.*the replica asked \([0-9]*\): its disk overlay.*/\1/p' "$TMP/ovnoask.pri.log")
[ "${asks:-x}" = 0 ] || { echo "negative control: a replica that never asks asked '${asks:-}'"; exit 1; }
full=$(grep -c "the COLO replica's overlay is full" "$TMP/ovnoask.sec.log" || true)
[ "$full" -gt 0 ] || { echo "negative control: a replica that never asks never filled its overlay"; tail -5 "$TMP/ovnoask.sec.log"; exit 1; }
waited=$(grep -o "a checkpoint emptied the COLO replica's overlay: [0-9]* of its guest's writes had waited for it, [0-9.]* ms" "$TMP/ovnoask.sec.log" | head -1)
[ -n "$waited" ] || { echo "negative control: no checkpoint emptied the full overlay"; tail -5 "$TMP/ovnoask.sec.log"; exit 1; }
echo "negative control ok: without the ask its overlay filled $full times; no write failed ($waited)"
cp "$TMP/g.cfg.nodisk" "$TMP/g.cfg"

# -- negative control: the replica's dirty pages not sent back --------------
scenario "negative control: no dirty pages back"
# The replica's own changes then survive the checkpoint: its memory is a
# mix of the two VMs.  The secondary checks the replica's whole memory
# after every checkpoint it ran before (colo_verify): it finds the mix at
# the first one, does not acknowledge it, never takes over, and ends the
# protection; the primary runs on, unprotected, and says so.
start_pair nodirty REMUS_TEST_COLO_DROP_DIRTY=1
grep -q "TEST MODE" "$TMP/nodirty.sec.log"
kv 1 1 "INCR a" "NOISE 64" > /dev/null
rc=0; wait_exit $SEC 10 || rc=$?
if [ "$rc" = 0 ]; then
    echo "the secondary exited 0 on a replica that kept its own changes"; exit 1
elif [ "$rc" = 124 ]; then
    echo "the secondary did not end on a replica that kept its own changes"; tail -5 "$TMP/nodirty.sec.log"; exit 1
fi
grep -q "the replica's memory differs from the primary's at the cut" "$TMP/nodirty.sec.log" ||
    { echo "the secondary did not say that the replica's memory differs"; tail -5 "$TMP/nodirty.sec.log"; exit 1; }
grep -q "NOT taking over" "$TMP/nodirty.sec.log" || { echo "no 'NOT taking over'"; exit 1; }
wait_for "$TMP/nodirty.pri.log" "the VM runs on UNPROTECTED" 10
kill -INT $PRI 2>/dev/null || true; sleep 0.5; kill -INT $PRI 2>/dev/null || true; wait $PRI 2>/dev/null || true
caught=$(grep -m1 -o "checkpoint [0-9]*: the replica.s memory differs from the primary.s" "$TMP/nodirty.sec.log")
echo "negative control ok: $caught"

# -- the primary dies ----------------------------------------------------------
scenario "the primary dies"
start_pair pdies
acked=$( (kv 1 1 "INCR x" "INCR x" "INCR x" "STATS" "INCR x" 2>/dev/null || true) |
        awk '$2 == "OK" && $3 ~ /^[0-9]+$/ {v=$3} END {print v+0}')
[ "$acked" = 4 ] || { echo "acked $acked, not 4"; exit 1; }
kill -9 $PRI; wait $PRI 2>/dev/null || true
wait_for "$TMP/pdies.sec.log" "FAILOVER" 20
kv 2 1 "GET x" | grep -q "^1 OK 4 " || { echo "the replica lost an acknowledged write"; tail "$TMP/pdies.sec.log"; exit 1; }
grep -q "keeps its own vCPU state" "$TMP/pdies.sec.log" ||
    { echo "a running replica must go on from its own vCPU state"; exit 1; }
kv 2 2 "INCR x" | grep -q "^2 OK 5 " || { echo "the replica does not serve"; exit 1; }
echo "primary dies: $(grep -o 'FAILOVER.*' "$TMP/pdies.sec.log" | cut -c1-160)"
kill -INT $SEC; wait $SEC 2>/dev/null || true

# -- a planned move, and COLO again from the new host ------------------------------
scenario "handover, then reprotect --colo"
start_pair ho
kv 1 1 "INCR h" "INCR h" "INCR h" | tail -1 | grep -q "^3 OK 3 " || { echo "no replies"; exit 1; }
"$REMUS" handover tguest > "$TMP/ho.out" 2> "$TMP/ho.err" || { cat "$TMP/ho.err"; exit 1; }
rc=0; wait $PRI || rc=$?
[ $rc = 0 ] || { echo "the old primary exited $rc, not 0"; tail "$TMP/ho.pri.log"; exit 1; }
wait_for "$TMP/ho.sec.log" "FAILOVER: failover requested by the primary (a handover)" 10
kv 2 4 "GET h" | grep -q "^4 OK 3 " || { echo "the handover lost acknowledged writes"; exit 1; }
wait_until 10 "the VM's control socket" test -S "$REMUS_RUN_DIR/tguest.sock" ||
    { tail -5 "$TMP/ho.sec.log"; ls -la "$REMUS_RUN_DIR"; exit 1; }
# the new host protects it again, in COLO mode, to a third
ip netns exec "$NS" "$REMUS" receive --colo --listen $PORT2 --tap tapb $HB \
    > "$TMP/ho.sb.log" 2>&1 & SB=$!; PIDS+=($SB)
# negative control: a Remus-mode reprotection is refused by a COLO secondary
if NSX "$REMUS" reprotect -i 20 $HB tguest $PORT2 2> "$TMP/ho.rp0"; then
    echo "negative control: a Remus reprotection to a COLO secondary was accepted"; exit 1
fi
grep -q "COLO" "$TMP/ho.rp0" || { cat "$TMP/ho.rp0"; exit 1; }
# (the secondary that refused it waits for the next primary)
# (with COLO's options, as protect's: a periodic checkpoint every 150 ms,
# not the default 2000)
NSX "$REMUS" reprotect --colo -i 20 --colo-max-interval 150 --compare-timeout 40 \
    --netbuf-max-bytes 4194304 $HB tguest $PORT2 2> "$TMP/ho.rp" || { cat "$TMP/ho.rp"; exit 1; }
kv 3 5 "INCR h" "INCR h" | tail -1 | grep -q "^6 OK 5 " || { echo "no replies after the reprotection"; exit 1; }
wait_until 5 "the reprotection's COLO status" eval '"$REMUS" status | grep -q "COLO comparing: checkpoints by cause"'
periodic() { "$REMUS" status | grep -o "periodic [0-9]*" | head -1 | awk '{print $2}'; }
n0=$(periodic); sleep 4; n1=$(periodic)
echo "reprotect --colo-max-interval 150: $((n1 - n0)) periodic checkpoints in 4 s (the default, 2000 ms: 2)"
[ $((n1 - n0)) -ge 6 ] || { "$REMUS" status; echo "the reprotection did not take --colo-max-interval"; exit 1; }
# the host that took over dies: the third goes on from its replica's state
kill -9 $SEC; wait $SEC 2>/dev/null || true
wait_for "$TMP/ho.sb.log" "FAILOVER" 20
kv 4 7 "GET h" | grep -q "^7 OK 5 " || { echo "the third host lost acknowledged writes"; tail "$TMP/ho.sb.log"; exit 1; }
echo "handover then reprotect --colo: $(grep -ao 'FAILOVER.*' "$TMP/ho.sb.log" | cut -c1-120)"
kill -INT $SB; wait $SB 2>/dev/null || true

# -- the secondary dies --------------------------------------------------------
scenario "the secondary dies"
start_pair sdies
kv 1 1 "INCR y" > /dev/null
kill -9 $SEC; wait $SEC 2>/dev/null || true
wait_for "$TMP/sdies.pri.log" "UNPROTECTED" 20
kv 1 2 "INCR y" | grep -q "^2 OK 2 " || { echo "the primary does not run on"; exit 1; }
kv 1 3 "STATS" | grep -q "OK writes=" || { echo "the primary's output is still held"; exit 1; }
kill -INT $PRI; sleep 0.5; kill -INT $PRI 2>/dev/null || true; wait $PRI 2>/dev/null || true

# -- refusals -------------------------------------------------------------------
scenario "refusals"
if "$REMUS" protect --colo -F -n "$TMP/g.cfg" $PORT 2> "$TMP/e1"; then exit 1; fi
grep -q "not with -n" "$TMP/e1" || { cat "$TMP/e1"; exit 1; }
if "$REMUS" protect --compare-timeout 5 "$TMP/g.cfg" $PORT 2> "$TMP/e2"; then exit 1; fi
grep -q "add --colo" "$TMP/e2" || { cat "$TMP/e2"; exit 1; }
# a disk left unreplicated: the replica's disk would not be the primary's
if "$REMUS" protect --colo -F -d "$TMP/g.cfg" $PORT 2> "$TMP/e3"; then exit 1; fi
grep -q "with -d" "$TMP/e3" || { cat "$TMP/e3"; exit 1; }
ip netns exec "$NS" "$REMUS" receive --listen $PORT --tap taps $HB > "$TMP/remus.sec.log" 2>&1 & SEC=$!; PIDS+=($SEC)
sleep 0.3
# (refused, it runs its VM on unprotected, as any primary whose secondary
# is lost: killed here)
ip netns exec "$NS" "$REMUS" protect --colo --progress 0 "$TMP/g.cfg" $PORT \
    > "$TMP/refused.pri.log" 2>&1 < /dev/null & PRI=$!; PIDS+=($PRI)
wait_for "$TMP/refused.pri.log" "refused" 30
kill -9 $PRI 2>/dev/null || true; wait $PRI 2>/dev/null || true
grep -q "COLO" "$TMP/refused.pri.log" || { echo "the refusal does not name COLO"; cat "$TMP/refused.pri.log"; exit 1; }
echo "refused: $(grep -o 'handshake.*' "$TMP/refused.pri.log" | head -1 | cut -c1-200)"
kill -TERM $SEC 2>/dev/null || true; wait $SEC 2>/dev/null || true
echo "kvm_colo: ok"
