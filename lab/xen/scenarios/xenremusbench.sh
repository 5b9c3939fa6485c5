#!/bin/sh
# A benchmark, not a test (`make bench-xen`; not in tests/lab): remus and
# Xen's own `xl remus` side by side on the same PVH guest (with a VIF), at
# the same interval, in one boot (#21 goal 7).  Rows, $SECS seconds each
# (default 60), the checkpoint interval $INTERVAL ms (default 200):
#   1. unprotected;
#   2. `remus protect --xen -F -n -d -b`: checkpoints to /dev/null, output
#      not held: the same work as row 3, ours;
#   3. `remus protect --xen` to a `remus receive --xen` in the same dom0,
#      output held by a plug qdisc until each checkpoint is acknowledged:
#      the product as it runs (more work than rows 2 and 4: the send, the
#      secondary's buffering and acknowledgement);
#   4. `xl remus -F -n -d -b`: Xen's own (Debian's libxl is built without
#      network buffering, so -n; -b: to /dev/null, like row 2).
#      Stopping it by a signal may leave the guest suspended or in
#      log-dirty mode;
#   5. `xl remus -F -n -d` to `xl migrate-receive -r` in the same dom0
#      (`-s ''`: the receiver's command run by sh, no ssh): xl as it runs,
#      the guest suspended while xl sends; compared with row 3.
# Each row's window starts at its first suspension (xl remus first sends
# every frame of the PVH p2m, 1,044,480, with the guest running: 30-60 s
# under TCG), then pings and the watch run for $SECS.
# The same instruments for every row: bench/xen_pause_watch polls the
# domain every 0.5 ms from dom0 and times each suspension (shut down for
# suspend until resumed; the guest's own freeze before it is the same
# whoever asks); pings from dom0 through the VIF (5 a second: rtt p50 and
# p99); the guest's counter lines against unprotected (printed every half
# second by a shell loop: says little).  Besides, for remus: its own pause
# (stats file: suspend request to resume).  Under TCG absolute times mean
# little; the ratios are the point.
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
# The lab boots Xen with guest_loglvl=all (to diagnose deaths): then every
# XEN_DOMCTL_gethvmcontext prints each HVM save record on the serial
# console, 4-8.5 ms per checkpoint under TCG for both tools (timed in the
# lab: "state" 8.4 ms, 1.0 ms without).  Xen's default prints none of
# them; Xen's death lines (a triple fault: XENLOG_ERR) still print.
xl set-parameters guest_loglvl=warning || fail "cannot set Xen's guest_loglvl"
sed -e 's/^name = .*/name = "labremus"/' /payload/guest-net.cfg > /tmp/g.cfg
log=/var/log/xen/console/guest-labremus.log
create_guest /tmp/g.cfg labremus
wait_counter $log 4 90 || fail "the guest does not count"
grep -q "guest: eth0 up" $log || fail "the guest's network did not come up"
dom=$(xl domid labremus)
ip addr add 10.80.0.1/24 dev vif$dom.0
# ticks FROM TO: the guest's counter lines between lines FROM and TO of its log
ticks() { sed -n "$1,$2p" $log | tr -d '\r' | grep -ac "^guest: counter "; }
here() { wc -l < $log; }
rate() { awk -v n="$1" -v t="$2" 'BEGIN {printf "%.2f", n / t}'; }
# ratio A B: A / B, "-" when either is not a number (a row not measured)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.3g", a / b; else print "-"}'; }
field() { echo "$1" | awk -v k="$2" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}'; }
# pings_start NAME / pings_end NAME: 5 pings a second through the VIF for
# the row; the end prints "p50 P99 lost/sent" (rtt in ms)
pings_start() { busybox ping -i 0.2 -W 5 10.80.0.2 > "/tmp/ping.$1" 2>&1 & PING=$!; }
pings_end() {
    kill -INT $PING 2>/dev/null || true; wait $PING 2>/dev/null || true
    awk '/ bytes from / {for (i = 1; i <= NF; i++) if ($i ~ /^time=/) {sub(/time=/, "", $i); t[n++] = $i + 0}}
         / packets transmitted/ {sent = $1}
         END {if (!n) {print "- - " sent "/" sent; exit}
              for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (t[j] < t[i]) {x = t[i]; t[i] = t[j]; t[j] = x}
              printf "%.1f %.1f %d/%d\n", t[int((n - 1) / 2)], t[int((n - 1) * 99 / 100)], sent - n, sent}' "/tmp/ping.$1"
}
# p50 of the numbers on standard input ("-" for none)
median() { sort -n | awk '{a[NR] = $1} END {if (!NR) print "-"; else print a[int((NR + 1) / 2)]}'; }
# stats_p50: remus's own pause p50 (ms) from its --stats-file
stats_p50() { awk '{printf "%.1f\n", $2 / 1000}' /tmp/stats | median; }
# pages per checkpoint, p50: remus's from its --stats-file (column 3, the
# first checkpoint, the initial copy's end, left out); xl remus's from its
# log ("Checkpointed save: N/N", one line per checkpoint)
stats_pages() { awk 'NR > 1 {print $3}' /tmp/stats | median; }
xl_pages() { sed -n 's/.*Checkpointed save: \([0-9]*\)\/.*/\1/p' "$1" | median; }
# parts: remus's own pause by part, means in ms over its checkpoints but the
# first (the initial copy's end): --stats-file columns 8-14, then of pages
# the mapping (16), and the page faults the pause took (15, a mean)
parts() {
    awk 'NR > 1 {n++; for (i = 8; i <= 16; i++) t[i] += $i}
         END {if (!n) {print "-"; exit}
              printf "suspend %.1f, harvest %.1f, disk cut %.1f, epoch %.1f, pages %.1f (of which mapping %.1f), state %.1f, resume %.1f; page faults %.1f a pause",
                     t[8]/n/1000, t[9]/n/1000, t[10]/n/1000, t[11]/n/1000, t[12]/n/1000, t[16]/n/1000, t[13]/n/1000, t[14]/n/1000, t[15]/n}' /tmp/stats
}
# measure_remus NAME: with remus protect ($PROT) started, wait for its
# first checkpoint, then watch it and ping for $T s, and stop it (SIGTERM:
# it must end cleanly); sets w_NAME (xen_pause_watch's line), rate_NAME
# (counter lines/s), pings_NAME, own_NAME (its own pause p50),
# parts_NAME (its pause by part) and pg_NAME (pages per checkpoint, p50)
measure_remus() {
    $W "$dom" 1 600 > /tmp/watch.first 2>&1 || fail "no checkpoint ($1): $(cat /tmp/watch.first)"
    pings_start "$1"
    _a=$(here)
    $W "$dom" "$T" 600 > "/tmp/watch.$1" 2>&1 || fail "remus ($1): $(cat "/tmp/watch.$1")"
    _b=$(here)
    _p=$(pings_end "$1")
    kill -TERM $PROT; wait $PROT || fail "protect ($1) did not end cleanly"
    _w=$(cat "/tmp/watch.$1")
    _r=$(rate "$(ticks "$_a" "$_b")" "$(field "$_w" seconds)")
    _o=$(stats_p50)
    eval "w_$1=\$_w; rate_$1=\$_r; pings_$1=\$_p; own_$1=\$_o; parts_$1=\$(parts); pg_$1=\$(stats_pages)"
    echo "watch: $_w; remus's own pause p50 $_o ms over $(wc -l < /tmp/stats) checkpoints; counter lines/s $_r; pings $_p"
}
# row LABEL WATCH-LINE COUNTER-RATE PINGS PAGES: one protected row of the
# table
row() {
    echo "| $1 | $(field "$2" rate) | $5 | $(field "$2" p50_ms) | $(field "$2" p99_ms) | $(field "$2" max_ms) | $(echo "$4" | cut -d' ' -f1) | $(echo "$4" | cut -d' ' -f2) | $(echo "$4" | cut -d' ' -f3) | $(ratio "$3" "$base") |"
}
# per_page P50-MS PAGES: suspended ms per 100 pages of a checkpoint
per_page() { awk -v t="$1" -v n="$2" 'BEGIN {if (n + 0 > 0) printf "%.2f", t * 100 / n; else print "-"}'; }
# versus WHAT A-NAME A-WATCH A-PAGES B-NAME B-WATCH B-PAGES: A's suspended
# p50 against B's, plain and per 100 pages (how many pages a checkpoint
# carries differs between the tools and between runs: xl remus's cycle is
# longer than its -i when it sends slowly)
versus() {
    _pa=$(per_page "$(field "$3" p50_ms)" "$4")
    _pb=$(per_page "$(field "$6" p50_ms)" "$7")
    echo "suspended p50, $1: $(ratio "$(field "$3" p50_ms)" "$(field "$6" p50_ms)") (goal: <= 0.2)"
    echo "per 100 pages: $2 $_pa ms, $5 $_pb ms: $(ratio "$_pa" "$_pb")"
}

echo "== 1. unprotected, $T s"
pings_start base
a=$(here); sleep "$T"; b=$(here)
pb=$(pings_end base)
base=$(rate "$(ticks "$a" "$b")" "$T")
echo "counter lines/s: $base; pings p50 p99 lost/sent: $pb"

echo "== 2. remus protect --xen -F -n -d -b -i $I"
op_begin "remus protect -b" $dom
rm -f /tmp/stats
$R protect --xen -F -n -d -b -i "$I" --progress 0 --stats-file /tmp/stats labremus > /tmp/prot.log 2>&1 &
PROT=$!
measure_remus bh
op_end "remus protect -b" $dom

echo "== 3. remus protect --xen -i $I (to remus receive --xen; output held)"
$R receive --xen --key-file /tmp/lab.key --config /tmp/g.cfg --listen 127.0.0.1:7071 --heartbeat 200 --heartbeat-timeout 10000 \
    --progress 0 > /tmp/recv.log 2>&1 &
RECV=$!
wait_listen 7071 $RECV || fail "receive is not listening"
op_begin "remus protect" $dom
rm -f /tmp/stats
$R protect --xen --key-file /tmp/lab.key -i "$I" --heartbeat 200 --heartbeat-timeout 10000 --progress 0 --stats-file /tmp/stats \
    labremus 127.0.0.1:7071 > /tmp/prot.log 2>&1 &
PROT=$!
measure_remus held
wait $RECV || fail "receive did not end cleanly"
op_end "remus protect" $dom

# measure_xl NAME XL-REMUS-ARGS...: xl remus on the guest for a row; sets
# wx_NAME (the watch's line), xlrate_NAME, pxl_NAME, xlpg_NAME (pages per
# checkpoint, p50), or xlwhy_NAME (why it is NOT MEASURED).  Its guest
# may die under it (a triple fault under nested SVM in TCG, the lab's
# hazard): then the row is NOT MEASURED, the rows before it stand.  Stopped by SIGINT, a receiver of its own with
# it (pkill -f matches the receiver and, in row 5, xl remus itself, whose
# arguments name it), so that no second guest is left running.
measure_xl() {
    _n=$1; shift
    op_begin "xl remus ($_n)" $dom
    xl -vvv remus "$@" > "/tmp/xlremus.$_n" 2>&1 &
    XLR=$!
    _why= ; _wx= ; _xr= ; _px=
    $W "$dom" 1 900 > /tmp/watch.first 2>&1 || _why="no first checkpoint: $(cat /tmp/watch.first)"
    if [ -z "$_why" ]; then
        pings_start "xl$_n"
        _a=$(here)
        $W "$dom" "$T" 600 > "/tmp/watch.xl$_n" 2>&1 || _why="the watch failed: $(cat "/tmp/watch.xl$_n")"
        _b=$(here)
        _px=$(pings_end "xl$_n")
    fi
    if [ -z "$_why" ]; then
        _wx=$(cat "/tmp/watch.xl$_n")
        _xr=$(rate "$(ticks "$_a" "$_b")" "$(field "$_wx" seconds)")
        echo "watch: $_wx; counter lines/s $_xr; pings $_px"
        kill -0 $XLR 2>/dev/null || _why="xl remus ended during its row"
    fi
    echo "xl remus ($_n) log: $(wc -l < "/tmp/xlremus.$_n") lines; its last words:"
    grep -v ': debug: ' "/tmp/xlremus.$_n" | tail -6
    busybox pkill -INT -f 'xl migrate-receive' 2>/dev/null || true
    kill -INT $XLR 2>/dev/null || true
    for _i in $(seq 1 30); do kill -0 $XLR 2>/dev/null || break; sleep 1; done
    kill -KILL $XLR 2>/dev/null || true
    wait $XLR 2>/dev/null || true
    busybox pkill -KILL -f 'xl migrate-receive' 2>/dev/null || true
    for _d in $(xl list | awk 'NR > 1 && $1 ~ /^labremus-/ {print $1}'); do xl destroy "$_d" || true; done
    op_end "xl remus ($_n)" $dom
    # xl remus stopped by a signal may leave the guest suspended
    _st=$(xl list labremus 2>/dev/null | awk 'NR == 2 {print $5}')
    case $_st in *s*) echo "note: after xl remus ($_n) the guest is in state $_st";; esac
    eval "wx_$_n=\$_wx; xlrate_$_n=\$_xr; pxl_$_n=\$_px; xlwhy_$_n=\$_why; xlpg_$_n=\$(xl_pages /tmp/xlremus.\$_n)"
}

echo "== 4. xl remus -F -n -d -b -i $I"
measure_xl b -F -n -d -b -i "$I" labremus dummy

echo "== 5. xl remus -F -n -d -i $I (to xl migrate-receive -r in the same dom0)"
# xl remus -s '': its "host" is the receiver's whole command, run by sh
# (no ssh in the lab): the product as it runs, less the network buffering
# Debian's libxl lacks; the guest stays suspended while xl sends.
if xl list labremus > /dev/null 2>&1; then
    measure_xl r -F -n -d -i "$I" -s '' labremus 'exec xl migrate-receive -r -e'
else
    xlwhy_r="the guest did not survive row 4"
fi

xl destroy labremus || true
for i in $(seq 1 30); do xl list | grep -q labremus || break; sleep 1; done

echo "xenremusbench: remus and xl remus on the same PVH guest (128 MiB, 1 vCPU, a VIF), interval $I ms, one boot, Xen's guest_loglvl=warning; suspended = seen from dom0 (bench/xen_pause_watch); pings from dom0 through the VIF, 5/s"
echo "| row | checkpoints/s | pages/checkpoint p50 | suspended p50 (ms) | p99 (ms) | max (ms) | ping p50 (ms) | ping p99 (ms) | pings lost/sent | guest counter lines/s vs unprotected |"
echo "|---|---|---|---|---|---|---|---|---|---|"
echo "| unprotected | - | - | - | - | - | $(echo "$pb" | cut -d' ' -f1) | $(echo "$pb" | cut -d' ' -f2) | $(echo "$pb" | cut -d' ' -f3) | 1 ($base/s) |"
row "remus protect --xen -F -n -d -b (its own pause p50 $own_bh ms)" "$w_bh" "$rate_bh" "$pings_bh" "$pg_bh"
row "remus protect --xen, output held (its own pause p50 $own_held ms)" "$w_held" "$rate_held" "$pings_held" "$pg_held"
if [ -z "$xlwhy_b" ]; then
    row "xl remus -F -n -d -b" "$wx_b" "$xlrate_b" "$pxl_b" "$xlpg_b"
else
    echo "| xl remus -F -n -d -b | NOT MEASURED: $xlwhy_b |"
fi
if [ -z "$xlwhy_r" ]; then
    row "xl remus -F -n -d, to xl migrate-receive -r (output not held)" "$wx_r" "$xlrate_r" "$pxl_r" "$xlpg_r"
else
    echo "| xl remus -F -n -d, to xl migrate-receive -r | NOT MEASURED: $xlwhy_r |"
fi
echo "remus's own pause by part (means, ms): -b: $parts_bh; output held: $parts_held"
[ -n "$xlwhy_b" ] || versus "remus -b / xl remus -b" "remus -b" "$w_bh" "$pg_bh" "xl remus -b" "$wx_b" "$xlpg_b"
[ -n "$xlwhy_r" ] || versus "remus as it runs / xl remus to its receiver" "remus as it runs" "$w_held" "$pg_held" \
    "xl remus to its receiver" "$wx_r" "$xlpg_r"
