#!/bin/sh
# A benchmark, not a test (`make bench-xen`; not in tests/lab): remus and
# Xen's own `xl remus` side by side on the same PVH guest, at the same
# interval, in one boot (#21 goal 7).  Rows, $SECS seconds each (default
# 60), the checkpoint interval $INTERVAL ms (default 200):
#   1. unprotected;
#   2. `remus protect --xen -i INTERVAL` to a `remus receive --xen` in the
#      same dom0 (ended cleanly: SIGTERM);
#   3. `xl remus -F -n -d -b -i INTERVAL`, 3 x $SECS (memory only, to /dev/null: no
#      network, no replica -- cheaper than ours by the send and the
#      secondary's work; the lab has no second host for `xl migrate-receive
#      -r` over ssh).  Last: killing xl remus may leave the guest suspended.
# The same instrument for both: bench/xen_pause_watch polls the domain
# every 0.5 ms from dom0 and times each suspension (shut down for suspend
# until resumed; the guest's own freeze before it is the same whoever
# asks).  Besides: remus's own pause (its stats file, suspend request to
# resume), and the guest's counter lines per second against unprotected.
# Under TCG absolute times mean little; the ratios are the point.
set -e
. /payload/scenario-lib.sh
R=/payload/remus
W=/payload/xen_pause_watch
I=${INTERVAL:-200}
T=${SECS:-60}
RECV= ; PROT= ; XLR=
fail() {
    echo "FAIL: $*"
    echo "--- receive"; tail -15 /tmp/recv.log 2>/dev/null || true
    echo "--- protect"; tail -15 /tmp/prot.log 2>/dev/null || true
    echo "--- xl remus"; tail -15 /tmp/xlremus.log 2>/dev/null || true
    xl list || true; exit 1
}
ip link set lo up
$R keygen /tmp/lab.key
sed -e 's/^name = .*/name = "labremus"/' /payload/guest.cfg > /tmp/g.cfg
log=/var/log/xen/console/guest-labremus.log
create_guest /tmp/g.cfg labremus
wait_counter $log 4 90 || fail "the guest does not count"
dom=$(xl domid labremus)
# ticks FROM TO: the guest's counter lines between lines FROM and TO of its log
ticks() { sed -n "$1,$2p" $log | tr -d '\r' | grep -ac "^guest: counter "; }
here() { wc -l < $log; }
rate() { awk -v n="$1" -v t="$2" 'BEGIN {printf "%.2f", n / t}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.3g", a / b; else print "-"}'; }
field() { echo "$1" | awk -v k="$2" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}'; }

echo "== 1. unprotected, $T s"
a=$(here); sleep "$T"; b=$(here)
base=$(rate "$(ticks "$a" "$b")" "$T")
echo "counter lines/s: $base"

echo "== 2. remus protect --xen -i $I"
$R receive --xen --key-file /tmp/lab.key --config /tmp/g.cfg --listen 127.0.0.1:7071 --heartbeat 200 --heartbeat-timeout 10000 \
    --progress 0 > /tmp/recv.log 2>&1 &
RECV=$!
wait_listen 7071 $RECV || fail "receive is not listening"
op_begin "remus protect" $dom
$R protect --xen --key-file /tmp/lab.key -i "$I" --heartbeat 200 --heartbeat-timeout 10000 --progress 0 --stats-file /tmp/stats \
    labremus 127.0.0.1:7071 > /tmp/prot.log 2>&1 &
PROT=$!
a=$(here)
$W "$dom" "$T" 600 > /tmp/watch.remus || fail "remus: $(cat /tmp/watch.remus)"
b=$(here)
kill -TERM $PROT; wait $PROT || fail "protect did not end cleanly"
wait $RECV || fail "receive did not end cleanly"
op_end "remus protect" $dom
wr=$(cat /tmp/watch.remus)
secs=$(field "$wr" seconds)
remus_rate=$(rate "$(ticks "$a" "$b")" "$secs")
own_p50=$(sort -n -k2 /tmp/stats | awk '{a[NR] = $2} END {printf "%.1f", a[int((NR + 1) / 2)] / 1000}')
echo "watch: $wr; remus's own pause p50 $own_p50 ms over $(wc -l < /tmp/stats) checkpoints; counter lines/s $remus_rate"
for i in $(seq 1 60); do
    if [ "$(xl list | grep -c labremus)" -le 1 ]; then break; fi
    sleep 1
done

echo "== 3. xl remus -F -n -d -b -i $I"
op_begin "xl remus" $dom
xl remus -F -n -d -b -i "$I" labremus dummy > /tmp/xlremus.log 2>&1 &
XLR=$!
a=$(here)
# three times as long: in one run its first checkpoint alone kept the
# guest suspended for 60 s
$W "$dom" "$((3 * T))" 900 > /tmp/watch.xl || fail "xl remus: $(cat /tmp/watch.xl)"
b=$(here)
wx=$(cat /tmp/watch.xl)
secs=$(field "$wx" seconds)
xl_rate=$(rate "$(ticks "$a" "$b")" "$secs")
echo "watch: $wx; counter lines/s $xl_rate"
echo "xl remus's last lines:"; tail -5 /tmp/xlremus.log || true
kill -INT $XLR 2>/dev/null || true
sleep 2
kill -KILL $XLR 2>/dev/null || true
op_end "xl remus" $dom
xl destroy labremus || true

p50r=$(field "$wr" p50_ms); p50x=$(field "$wx" p50_ms)
echo "xenremusbench: remus and xl remus on the same PVH guest (128 MiB, 1 vCPU), interval $I ms, one boot; suspended = seen from dom0 (bench/xen_pause_watch)"
echo "| row | checkpoints/s | suspended p50 (ms) | p99 (ms) | max (ms) | guest counter lines/s vs unprotected |"
echo "|---|---|---|---|---|---|"
echo "| unprotected | - | - | - | - | 1 ($base/s) |"
echo "| remus protect --xen (its own pause p50 $own_p50 ms) | $(field "$wr" rate) | $p50r | $(field "$wr" p99_ms) | $(field "$wr" max_ms) | $(ratio "$remus_rate" "$base") |"
echo "| xl remus -F -n -d -b | $(field "$wx" rate) | $p50x | $(field "$wx" p99_ms) | $(field "$wx" max_ms) | $(ratio "$xl_rate" "$base") |"
echo "remus's suspended p50 / xl remus's: $(ratio "$p50r" "$p50x") (goal: <= 0.2)"
