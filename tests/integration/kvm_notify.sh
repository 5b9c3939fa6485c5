#!/usr/bin/env bash
# remus protect / remus receive under a service manager (Type=notify): a
# datagram socket of the test's own is NOTIFY_SOCKET (tests/support/
# notify_listen.py logs what arrives, with the time), WATCHDOG_USEC asks
# for the watchdog.
#  - the secondary says READY=1 once it listens (before any primary), then
#    STATUS= lines; the primary says READY=1 after its first acknowledged
#    checkpoint, "STATUS=protecting epoch N", and both feed WATCHDOG=1;
#  - a checkpoint loop that stalls (the secondary stopped with SIGSTOP: no
#    ack comes, the heartbeat timeout is long) stops feeding the watchdog,
#    and feeds it again once it goes on;
#  - its --metrics endpoint passes promtool while it protects;
#  - a clean stop disarms the watchdog (WATCHDOG_USEC=0: the VM runs on
#    in this process) and says STOPPING=1.
. "$ROOT/tests/lib/kvm.sh"
ns_setup tapp taps
PORT=127.0.0.1:7790
WD_USEC=400000        # fed at most every 100 ms

listen() {  # listen NAME: NOTIFY_SOCKET $TMP/NAME.sock, log $TMP/NAME.notify
    python3 "$ROOT/tests/support/notify_listen.py" "$TMP/$1.sock" \
        "$TMP/$1.notify" & PIDS+=($!)
    wait_until 10 "the $1 notification socket" test -S "$TMP/$1.sock"
}
now() { python3 -c 'import time; print("%.3f" % time.monotonic())'; }
# fields_between LOG FIELD T0 T1: how many FIELD lines arrived in [T0, T1]
fields_between() {
    awk -v f="$2" -v a="$3" -v b="$4" '$2 == f && $1 >= a && $1 <= b' "$1" | wc -l
}
# silent LOG T0 T1: no WATCHDOG=1 in [T0, T1]
silent() { [ "$(fields_between "$1" WATCHDOG=1 "$2" "$3")" -eq 0 ]; }
count() { grep -c -- "$2" "$1" 2>/dev/null || true; }

scenario "readiness, status and watchdog"
listen pri; listen sec
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=2000 dirty_wss=500" 1
# ip netns exec directly (not NSX, a function: backgrounded in a subshell,
# whose pid is not remus's): the signals below must reach remus.
NOTIFY_SOCKET="$TMP/sec.sock" WATCHDOG_USEC=$WD_USEC \
    ip netns exec "$NS" "$REMUS" receive --listen $PORT --tap taps --progress 0 \
    > "$TMP/sec.log" 2>&1 & SEC=$!; PIDS+=($SEC)
# Ready once listening: no primary yet.
wait_for "$TMP/sec.notify" "READY=1" 20
wait_for "$TMP/sec.notify" "STATUS=waiting for the primary" 5
wait_until 10 "the waiting secondary feeds its watchdog" \
    eval '[ "$(count "$TMP/sec.notify" WATCHDOG=1)" -ge 3 ]'
NOTIFY_SOCKET="$TMP/pri.sock" WATCHDOG_USEC=$WD_USEC \
    ip netns exec "$NS" "$REMUS" protect -i 20 --progress 0 --heartbeat-timeout 10000 \
    --metrics 127.0.0.1:0 --console "$TMP/pri.console" "$TMP/g.cfg" $PORT \
    > "$TMP/pri.log" 2>&1 & PRI=$!; PIDS+=($PRI)
wait_for "$TMP/pri.notify" "READY=1" 60
wait_for "$TMP/pri.notify" "STATUS=protecting epoch" 10
wait_for "$TMP/sec.notify" "STATUS=replica at epoch" 10
wait_until 10 "the primary feeds its watchdog" \
    eval '[ "$(count "$TMP/pri.notify" WATCHDOG=1)" -ge 5 ]'
# READY=1 once only, and only after the first acknowledged checkpoint:
# the first STATUS= after it names an epoch.
[ "$(count "$TMP/pri.notify" READY=1)" -eq 1 ]
awk '$2 == "READY=1" { r = 1; next } r && /STATUS=/ { print; exit }' \
    "$TMP/pri.notify" | grep -q "STATUS=protecting epoch [1-9]"
# At most every quarter of the period (+ slack: the loop's 20 ms ticks).
# (counting afresh from a WATCHDOG_USEC=, which re-arms it)
awk '$2 ~ /^WATCHDOG_USEC=/ { p = 0 }
     $2 == "WATCHDOG=1" { if (p && $1 - p < 0.09) { print "fed after " $1 - p " s"; bad = 1 } p = $1 }
     END { exit bad }' "$TMP/pri.notify"

# Its metrics (the endpoint in the namespace), as promtool sees them.
PP=$(grep -o 'metrics at http://127.0.0.1:[0-9]*' "$TMP/pri.log" | sed 's/.*://')
NSX curl -sSf --max-time 5 "http://127.0.0.1:$PP/metrics" > "$TMP/m1.txt"
promtool check metrics < "$TMP/m1.txt"
grep -qx 'remus_state{state="protecting"} 1' "$TMP/m1.txt"
grep -qx 'remus_info{name="tguest",role="primary",backend="kvm"} 1' "$TMP/m1.txt"

scenario "a stalled checkpoint loop stops feeding the watchdog"
kill -STOP $SEC
sleep 0.5          # the epoch in flight: its ack never comes
t0=$(now); sleep 2; t1=$(now)
kill -CONT $SEC
fed=$(fields_between "$TMP/pri.notify" WATCHDOG=1 "$t0" "$t1")
echo "WATCHDOG=1 while the loop waited for an ack: $fed"
silent "$TMP/pri.notify" "$t0" "$t1"
# The check can fail: the same window in the time the loop ran.
must_fail "a window of the running loop has WATCHDOG=1" \
    silent "$TMP/pri.notify" "$(awk '$2 == "READY=1" { print $1 }' "$TMP/pri.notify")" "$t0"
wait_until 10 "the watchdog fed again after the stall" \
    eval '[ "$(fields_between "$TMP/pri.notify" WATCHDOG=1 "$t1" 1e12)" -ge 3 ]'
alive $PRI || { echo "the primary died in the stall"; exit 1; }
alive $SEC || { echo "the secondary died in the stall"; exit 1; }

scenario "a clean stop disarms the watchdog"
kill -INT $PRI
wait_for "$TMP/pri.log" "protection stopped after" 10
wait $SEC || { echo "secondary did not exit 0 after a clean stop"; cat "$TMP/sec.log"; exit 1; }
wait_for "$TMP/pri.notify" "WATCHDOG_USEC=0" 5
wait_for "$TMP/sec.notify" "WATCHDOG_USEC=0" 5
wait_for "$TMP/sec.notify" "STOPPING=1" 5
# Nothing feeds the watchdog once it is disarmed.
t=$(awk '$2 == "WATCHDOG_USEC=0" { print $1; exit }' "$TMP/pri.notify")
sleep 0.5
silent "$TMP/pri.notify" "$t" 1e12
kill -INT $PRI; wait $PRI || true
wait_for "$TMP/pri.notify" "STOPPING=1" 5
grep -h STATUS= "$TMP/pri.notify" "$TMP/sec.notify" | sort -u -k2 | head -20

echo "ok"
