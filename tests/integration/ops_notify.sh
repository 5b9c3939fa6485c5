#!/usr/bin/env bash
# The service manager's notifications (common/notify.h) without KVM: a
# protect/receive pair on the memory-only backend (build/tests/mem_pair)
# with NOTIFY_SOCKET on a datagram socket of the test's own
# (tests/support/notify_listen.py logs each field with its time) and
# WATCHDOG_USEC set.  kvm_notify.sh does the same with remus itself.
#  - primary: READY=1 once, after its first acknowledged checkpoint (the
#    STATUS= that comes with it names an epoch); STATUS= lines; WATCHDOG=1
#    at most every quarter of the period; a checkpoint loop that stalls
#    (2 s in the VM's resume) stops feeding it, and feeds it again after;
#    a clean stop disarms it (WATCHDOG_USEC=0) and says STOPPING=1;
#  - secondary: READY=1 once listening, STATUS=replica..., WATCHDOG=1;
#  - remus receive itself (waiting for a primary: no KVM needed): READY=1,
#    STATUS=, WATCHDOG=1, then WATCHDOG_USEC=0 and STOPPING=1 on SIGTERM;
#    with JOURNAL_STREAM naming its stderr, log lines start with their
#    priority (<4> for a warning), and not when stderr is another file;
#  - no NOTIFY_SOCKET: nothing is sent and nothing fails.
set -euo pipefail
. "$ROOT/tests/lib/wait.sh"
. "$ROOT/tests/lib/scratch.sh"   # TMP, REMUS_RUN_DIR, PIDS
PAIR=$BUILD/tests/mem_pair
WD_USEC=400000        # fed at most every 100 ms

listen() {  # listen NAME: socket $TMP/NAME.sock, log $TMP/NAME.notify
    python3 "$ROOT/tests/support/notify_listen.py" "$TMP/$1.sock" \
        "$TMP/$1.notify" & PIDS+=($!)
    wait_until 10 "the $1 notification socket" test -S "$TMP/$1.sock"
}
# fields_between LOG FIELD T0 T1: how many FIELD lines arrived in [T0, T1]
fields_between() {
    awk -v f="$2" -v a="$3" -v b="$4" '$2 == f && $1 >= a && $1 <= b' "$1" | wc -l
}
# fed_while_disarmed LOG: a WATCHDOG=1 after a WATCHDOG_USEC=0 and before
# the next arming, by the order the datagrams came in (a socket's
# datagrams keep their order; their times, to the millisecond, may tie).
# Prints each and succeeds when there is one.
fed_while_disarmed() {
    awk '$2 == "WATCHDOG_USEC=0" { d = 1; next }
         $2 ~ /^WATCHDOG_USEC=/ { d = 0 }
         d && $2 == "WATCHDOG=1" { print "WATCHDOG=1 at " $1 " while disarmed"; bad = 1 }
         END { exit !bad }' "$1"
}
# fail WHY: the check that failed, in words, for the runner's "why:".
fail() { echo "FAIL $*"; exit 1; }
# last_datagram NAME: the side's STOPPING=1 (the last it sends) is in the
# listener's log: it may lag behind a loaded machine.
last_datagram() {
    wait_until 10 "STOPPING=1 in the $1 log" in_file "$TMP/$1.notify" "STOPPING=1"
}
count() { grep -c -- "$2" "$1" || true; }
at() { awk -v f="$2" 'substr($0, index($0, " ") + 1) == f { print $1; exit }' "$1"; }   # first FIELD's time
# fed_often LOG: WATCHDOG=1 never twice within 90 ms (counting afresh
# from a WATCHDOG_USEC=, which re-arms it)
fed_often() {
    awk '$2 ~ /^WATCHDOG_USEC=/ { p = 0 }
         $2 == "WATCHDOG=1" { if (p && $1 - p < 0.09) { print "fed again after " $1 - p " s"; bad = 1 } p = $1 }
         END { exit bad }' "$1"
}

scenario "primary: readiness, status, watchdog, a stalled loop, a clean stop"
listen pri
# The stall: 2 s in the resume after checkpoint 40 (a VM that does not
# resume); the pair stops cleanly after 5 s.
NOTIFY_SOCKET="$TMP/pri.sock" WATCHDOG_USEC=$WD_USEC \
    "$PAIR" -n primary -s 40:2000 -t 5 > "$TMP/pri.out" 2> "$TMP/pri.log" ||
    { cat "$TMP/pri.log"; exit 1; }
last_datagram pri
cat "$TMP/pri.out"
grep -q "stalling the loop 2000 ms" "$TMP/pri.log" || fail "the pair did not stall"
[ "$(count "$TMP/pri.notify" READY=1)" -eq 1 ] || fail "READY=1 not sent once"
# READY=1 after the first acknowledged checkpoint: the STATUS= sent with
# it names an epoch.
awk '$2 == "READY=1" { r = 1; next } r && /STATUS=/ { print; exit }' \
    "$TMP/pri.notify" | grep "STATUS=protecting epoch [1-9]"
[ "$(count "$TMP/pri.notify" "STATUS=protecting epoch")" -ge 1 ]
fed_often "$TMP/pri.notify"
must_fail "the watchdog fed every 50 ms is caught" fed_often \
    <(printf '1.00 WATCHDOG=1\n1.05 WATCHDOG=1\n')
# The stall: the gap between two WATCHDOG=1 around it is the stall's.
gap=$(awk '$2 == "WATCHDOG=1" { if (p && $1 - p > g) g = $1 - p; p = $1 }
           END { printf "%.3f", g }' "$TMP/pri.notify")
echo "longest gap between two WATCHDOG=1: $gap s (a 2 s stall)"
awk -v g="$gap" 'BEGIN { exit !(g >= 1.9) }' || fail "the stall did not stop the feeding"
ready=$(at "$TMP/pri.notify" READY=1); disarm=$(at "$TMP/pri.notify" WATCHDOG_USEC=0)
[ -n "$disarm" ] || fail "no WATCHDOG_USEC=0 at the stop"
# fed before and after the stall, not after the disarm
fed=$(fields_between "$TMP/pri.notify" WATCHDOG=1 "$ready" "$disarm")
[ "$fed" -ge 10 ] || fail "only $fed WATCHDOG=1 while protecting"
if fed_while_disarmed "$TMP/pri.notify"; then fail "fed after the disarm"; fi
must_fail "a WATCHDOG=1 after the disarm is seen" eval \
    '! fed_while_disarmed <(printf "1.00 WATCHDOG=1\n1.10 WATCHDOG_USEC=0\n1.10 WATCHDOG=1\n")'

scenario "secondary: ready once listening, status, watchdog"
listen sec
NOTIFY_SOCKET="$TMP/sec.sock" WATCHDOG_USEC=$WD_USEC \
    "$PAIR" -n secondary -t 2 > /dev/null 2> "$TMP/sec.log" ||
    { cat "$TMP/sec.log"; exit 1; }
last_datagram sec
head -3 "$TMP/sec.notify"
# READY=1 came with "waiting for the primary": before any primary.
[ "$(at "$TMP/sec.notify" READY=1)" = "$(at "$TMP/sec.notify" "STATUS=waiting for the primary")" ]
grep -q "STATUS=replica at epoch [1-9]" "$TMP/sec.notify"
[ "$(count "$TMP/sec.notify" WATCHDOG=1)" -ge 5 ]
fed_often "$TMP/sec.notify"
grep -q "WATCHDOG_USEC=0" "$TMP/sec.notify"
grep -q "STOPPING=1" "$TMP/sec.notify"

scenario "remus receive itself: ready while waiting, stderr as the journal"
# A receiver waiting for its primary needs no /dev/kvm: the real command's
# notifications, and its log lines with priorities when JOURNAL_STREAM
# names its stderr (as systemd sets it).
listen cli
: > "$TMP/cli.log"
js=$(stat -c '%d:%i' "$TMP/cli.log")
NOTIFY_SOCKET="$TMP/cli.sock" WATCHDOG_USEC=$WD_USEC JOURNAL_STREAM=$js \
    "$REMUS" receive --listen 127.0.0.1:0 --insecure 2>> "$TMP/cli.log" > /dev/null & RCV=$!; PIDS+=($RCV)
wait_until 10 "READY=1 from remus receive" in_file "$TMP/cli.notify" "READY=1"
wait_until 10 "its watchdog fed while waiting" \
    eval '[ "$(count "$TMP/cli.notify" WATCHDOG=1)" -ge 3 ]'
grep -q "STATUS=waiting for the primary" "$TMP/cli.notify"
kill -TERM $RCV; wait $RCV || true
wait_until 5 "STOPPING=1 from remus receive" in_file "$TMP/cli.notify" "STOPPING=1"
grep -q "WATCHDOG_USEC=0" "$TMP/cli.notify"
cat "$TMP/cli.log"
grep -q '^<4>remus\[[0-9]*\] auth: warning: INSECURE' "$TMP/cli.log"
# Every logger line has its priority (the CLI's own "remus receive:"
# lines are not the logger's).
if grep '^remus\[' "$TMP/cli.log"; then echo "a log line without its priority"; exit 1; fi
# ... and none when stderr is another file than the one named.
: > "$TMP/cli2.log"
JOURNAL_STREAM=$js "$REMUS" receive --listen 127.0.0.1:0 --insecure 2>> "$TMP/cli2.log" > /dev/null & RCV=$!; PIDS+=($RCV)
wait_until 10 "the second receiver's warning" in_file "$TMP/cli2.log" "INSECURE"
kill -TERM $RCV; wait $RCV || true
grep -q '^remus\[[0-9]*\] auth: warning: INSECURE' "$TMP/cli2.log"

scenario "no NOTIFY_SOCKET: nothing sent, nothing fails"
( unset NOTIFY_SOCKET; WATCHDOG_USEC=$WD_USEC "$PAIR" -n primary -t 1 > /dev/null 2> "$TMP/none.log" ) ||
    { cat "$TMP/none.log"; exit 1; }
if grep -i "notify" "$TMP/none.log"; then exit 1; fi
echo ok
