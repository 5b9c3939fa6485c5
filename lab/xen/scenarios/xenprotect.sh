#!/bin/sh
# Remus on Xen, both ends in this dom0: `remus protect --xen` checkpoints a
# PVH guest with a VIF to `remus receive --xen`, which keeps a paused
# replica domain; the guest's network output is held by a plug qdisc on
# its VIF until each checkpoint is acknowledged (pings take about an
# interval).  Then the primary "host" dies (protect killed -9, the domain
# destroyed): the replica resumes from its last checkpoint, takes the
# guest's name, counts on, and answers pings.
set -e
. /payload/scenario-lib.sh
R=/payload/remus
log=/var/log/xen/console/guest-labguest.log
avg_rtt() { busybox ping -c "$1" -W 5 10.80.0.2 > /tmp/ping.log 2>&1 || true; tail -2 /tmp/ping.log >&2
            sed -n 's/.*min\/avg\/max = [0-9.]*\/\([0-9]*\)\..*/\1/p' /tmp/ping.log; }
fail() { echo "FAIL: $*"; echo "--- receive"; tail -30 /tmp/recv.log; echo "--- protect"; tail -30 /tmp/prot.log; xl list; exit 1; }

ip link set lo up
create_guest /payload/guest-net.cfg labguest
dom=$(xl domid labguest)
for i in $(seq 1 60); do if grep -q "guest: counter 4" $log 2>/dev/null; then break; fi; sleep 1; done
grep -q "guest: eth0 up" $log || { tail $log; echo "the guest's network did not come up"; exit 1; }
ip addr add 10.80.0.1/24 dev vif$dom.0
base=$(avg_rtt 5)
echo "unprotected: avg rtt ${base} ms"

# Keyed, as remus runs by default: one key for both "hosts".
$R keygen /tmp/lab.key
op_begin "remus receive" new
$R -v receive --xen --key-file /tmp/lab.key --config /payload/guest-net.cfg --listen 127.0.0.1:7070 \
    --heartbeat 200 --heartbeat-timeout 4000 --progress 0 > /tmp/recv.log 2>&1 &
RECV=$!
# The secondary builds its replica domain first (slow under TCG), then
# listens: wait for the socket, not a fixed time.
for i in $(seq 1 90); do
    if ss -Hltn 'sport = :7070' 2>/dev/null | grep -q .; then break; fi
    kill -0 $RECV 2>/dev/null || fail "receive ended before listening"
    sleep 1
done
ss -Hltn 'sport = :7070' | grep -q . || fail "receive is not listening after 90 s"
op_begin "remus protect" $dom
$R -v protect --xen --key-file /tmp/lab.key -i 1000 --heartbeat 200 --heartbeat-timeout 4000 \
    --progress 2000 --stats-file /tmp/stats labguest 127.0.0.1:7070 > /tmp/prot.log 2>&1 &
PROT=$!
acked() { cat /tmp/stats 2>/dev/null | wc -l; }
for i in $(seq 1 120); do if [ "$(acked)" -ge 5 ]; then break; fi
    kill -0 $PROT 2>/dev/null || fail "protect ended early"; sleep 1; done
[ "$(acked)" -ge 5 ] || fail "not 5 checkpoints acknowledged in 120 s"
echo "checkpoints acknowledged (epoch pause_us dirty_pages bytes send_us ack_us disk_late):"; tail -3 /tmp/stats
ifb=$(sed -n 's/.*held by a plug qdisc on \([a-z0-9]*\).*/\1/p' /tmp/prot.log | head -1)
[ -n "$ifb" ] || fail "no IFB for the VIF"
tc qdisc show dev "$ifb" | grep -q "qdisc plug" || fail "no plug qdisc on $ifb"
echo "plug qdisc on $ifb holds vif$dom.0's output"
held=$(avg_rtt 6)
echo "protected (1000 ms checkpoints): avg rtt ${held} ms"
[ "${held:-0}" -ge 100 ] || fail "output was not held until the acknowledgement (avg rtt ${held} ms)"
# The replica must go on from at least this counter: the mark is taken,
# then three more checkpoints are acknowledged (one may have been under
# way), so the last one holds a guest that had already printed it.
before=$(mark $log)
n=$(acked)
for i in $(seq 1 60); do if [ "$(acked)" -ge $((n + 3)) ]; then break; fi
    kill -0 $PROT 2>/dev/null || fail "protect ended early"; sleep 1; done
[ "$(acked)" -ge $((n + 3)) ] || fail "not 3 more checkpoints acknowledged in 60 s"
xl list

# The primary host dies.  (Protection must still be running: a replica
# that took over before this is a failure, with both logs shown.)
kill -0 $PROT 2>/dev/null || fail "protect ended before the primary was killed"
kill -9 $PROT
op_end "remus protect" $dom
xl destroy labguest
t0=$(date +%s)
# The replica takes over; the receive process then holds the domain (its
# control socket serves reprotect and handover) while it runs.
for i in $(seq 1 90); do
    if grep -q "is now 'labguest'\|still exists on this host" /tmp/recv.log; then break; fi
    kill -0 $RECV 2>/dev/null || break; sleep 1; done
echo "the replica took over after $(( $(date +%s) - t0 )) s"
cat /tmp/recv.log | tail -12
grep -q "FAILOVER" /tmp/recv.log || fail "receive did not fail over"
kill -0 $RECV 2>/dev/null || fail "receive ended after the takeover: it must hold the domain while it runs"
xl list
new=$(xl domid labguest) || fail "no domain named labguest after the failover"
[ "$new" != "$dom" ] || fail "labguest is still the old domain"
nlog=/var/log/xen/console/guest-labguest--replica.log
[ -f $nlog ] || nlog=/var/log/xen/console/guest-labguest.log
counts_on $nlog "$before" "the primary's death (on the replica)" || fail "the replica does not count on"
ip addr add 10.80.0.1/24 dev vif$new.0
after=$(avg_rtt 5)
echo "after failover: avg rtt ${after} ms"
[ -n "$after" ] || fail "the replica does not answer pings"
# Stopping the holder lets the domain run on (no --quorum): exit 3.
kill -TERM $RECV
rc=0; wait $RECV || rc=$?
op_end "remus receive" new
[ $rc -eq 3 ] || fail "receive exited $rc on SIGTERM after the failover, not 3"
[ "$(xl domid labguest 2>/dev/null)" = "$new" ] || fail "labguest did not run on after its holder stopped"
grep -q "runs on by itself" /tmp/recv.log || fail "receive did not say the domain runs on"
echo "xenprotect: checkpoints acknowledged, output held by sch_plug; after the primary's death the replica runs as labguest"
