#!/bin/bash
# Split-brain protection on Xen, with corosync really running: the same
# sessions as KVM's (primary/session.c, secondary/session.c) behind `remus
# protect/receive --xen --quorum corosync`.  Three "hosts" are network
# namespaces of this dom0 (tests/lib/cluster.sh: corosync + qdevice in p
# and s, qnetd in a); `remus protect --xen` runs in p, `remus receive
# --xen` (with a --fence-cmd) in s, both keyed, talking to the one Xen.
# The replication stream goes p -> s over the cluster's addresses, so
# isolating p cuts both.  (-F -n: the guest has no VIF here; output commit
# on Xen is the xenprotect and netbuf scenarios'.)
#   1. p isolated from s and the arbiter: s fences p and takes over (its
#      replica resumes from the last checkpoint, is renamed, counts on);
#      p has no quorum: it pauses and destroys its domain (exit 4).
#      Exactly one domain labguest, counting on from before the cut.
#   2. then the arbiter goes down: s's partition loses quorum and s, which
#      holds the VM's token, destroys the domain it runs (exit 4).
set -eu
. /payload/scenario-lib.sh
. /payload/wait.sh
# TCG is slow, and stalls: a token of 3000 ms timed out while the cluster
# formed (CI of 2026-12-02), and in the membership churn that followed
# corosync itself died (votequorum.c: Assertion `sender_node != NULL').
# Each try of a wait also takes far longer than its 0.1 s here.
CL_TOKEN=6000 CL_FORM_SECS=90
. /payload/cluster.sh
R=/payload/remus
log=/var/log/xen/console/guest-labguest.log
fail() { echo "FAIL: $*"; for f in /tmp/q/recv.log /tmp/q/prot.log /tmp/q/fence.out \
         /tmp/q/cluster/p/corosync.out /tmp/q/cluster/p/corosync.log \
         /tmp/q/cluster/p/qdevice.log /tmp/q/cluster/a/qnetd.log; do
         echo "--- $f"; tail -25 "$f" 2>/dev/null || true; done
         cl_show p; cl_show s; xl list; exit 1; }
trap 'cluster_down' EXIT
mkdir -p /tmp/q
ip link set lo up
# corosync's IPC (libqb) keeps its rings in /dev/shm, which this dom0's
# init does not mount.
mkdir -p /dev/shm
mountpoint -q /dev/shm || mount -t tmpfs tmpfs /dev/shm
cluster_up /tmp/q/cluster || fail "the cluster did not form"
echo "cluster: p and s quorate with the arbiter's vote"

create_guest /payload/guest.cfg labguest
dom=$(xl domid labguest)
wait_counter $log 4 || fail "the guest does not count"

$R keygen /tmp/lab.key
HB="--heartbeat 200 --heartbeat-timeout 4000"
Q="--quorum corosync --quorum-settle 15000"
op_begin "remus receive" new
ip netns exec "${CL}s" $R -v receive --xen --key-file /tmp/lab.key --config /payload/guest.cfg \
    --listen 10.78.0.2:7070 $HB $Q --progress 0 \
    --fence-cmd 'echo "fenced $REMUS_NAME at $REMUS_EPOCH" >> /tmp/q/fence.out' \
    > /tmp/q/recv.log 2>&1 &
RECV=$!
listening() { ip netns exec "${CL}s" ss -Hltn 'sport = :7070' 2>/dev/null | grep -q .; }
wait_until 120 "receive to listen" listening || fail "receive is not listening"
op_begin "remus protect" $dom
ip netns exec "${CL}p" $R -v protect --xen --key-file /tmp/lab.key -F -n -i 1000 $HB $Q \
    --progress 0 --stats-file /tmp/q/stats labguest 10.78.0.2:7070 > /tmp/q/prot.log 2>&1 &
PROT=$!
wait_until 120 "5 acknowledged checkpoints" lines_at_least /tmp/q/stats 5 || fail "no protection"
grep -q "named in the handshake" /tmp/q/recv.log || fail "the secondary did not bind the primary in the group"
before=$(mark $log)
n=$(wc -l < /tmp/q/stats)
wait_until 60 "3 more checkpoints" lines_at_least /tmp/q/stats $((n + 3)) || fail "protection stalled"

# -- 1. the primary's host isolated ------------------------------------------
echo "isolating p"
cluster_isolate p
st=0; wait $PROT || st=$?
op_end "remus protect" $dom
[ "$st" = 4 ] || fail "the isolated primary did not stop its domain (exit $st, not 4)"
grep -q "STOPPING the VM" /tmp/q/prot.log || fail "the primary did not say it stops"
grep -q "has no quorum" /tmp/q/prot.log || fail "the primary did not say why"
if xl list | awk '{print $2}' | grep -qx "$dom"; then fail "the primary's domain $dom still exists"; fi
wait_until 90 "the secondary's takeover" in_file /tmp/q/recv.log FAILOVER || fail "no takeover"
grep -q "fenced labguest at " /tmp/q/fence.out || fail "the fence command did not run before the takeover"
kill -0 $RECV 2>/dev/null || fail "receive ended: it must hold the VM's token while the domain runs"
wait_until 60 "the replica to be renamed labguest" sh -c 'xl domid labguest > /dev/null 2>&1' || fail "no labguest"
new=$(xl domid labguest)
[ "$new" != "$dom" ] || fail "labguest is still the old domain"
[ "$(xl list | awk '$1 ~ /^labguest/' | wc -l)" = 1 ] || fail "not exactly one labguest domain"
nlog=/var/log/xen/console/guest-labguest--replica.log
[ -f $nlog ] || nlog=$log
counts_on $nlog "$before" "the primary's isolation (on the replica)" || fail "the replica does not count on"
echo "isolate-p: $(grep -o 'FAILOVER.*' /tmp/q/recv.log | cut -c1-120)"
echo "  primary: $(grep -o 'STOPPING the VM.*' /tmp/q/prot.log | cut -c1-160)"

# -- 2. then the arbiter down: the side that took over loses quorum -----------
cluster_arbiter_down
st=0; wait $RECV || st=$?
op_end "remus receive" new
[ "$st" = 4 ] || fail "the side that took over ran on without quorum (exit $st, not 4)"
grep -q "lost quorum" /tmp/q/recv.log || fail "the secondary did not say why it stopped the domain"
if xl domid labguest > /dev/null 2>&1; then fail "labguest still runs without quorum anywhere"; fi
echo "arbiter down: $(grep -o 'STOPPED the VM.*' /tmp/q/recv.log | cut -c1-160)"
echo "xenquorum: exactly one side ran the guest, and none once no side had quorum"
