#!/bin/sh
# Planned moves and failback on Xen, both "hosts" in this dom0, keyed:
#  1. `remus protect --xen` to receive A; `remus handover labguest` (through
#     the protect process's control socket): the domain is paused for good
#     and destroyed here, A's replica takes over and the guest's name, and
#     counts on (same boot);
#  2. failback: `remus reprotect labguest HOST:PORT` asks A (which holds
#     the domain) to protect it again, full resync first, to receive B;
#  3. `remus handover labguest` again (through A's control socket, to the
#     reprotection): B's replica takes over; A's domain is gone;
#  4. refusals: a handover of a VM nothing protects names why.
set -e
. /payload/scenario-lib.sh
R=/payload/remus
clog=/var/log/xen/console
fail() { echo "FAIL: $*"; for f in /tmp/prot.log /tmp/recvA.log /tmp/recvB.log; do
         echo "--- $f"; tail -25 $f 2>/dev/null; done; xl list; exit 1; }
# The console log the guest writes to now (a replica's is named after
# the domain it was created as).
glog() { ls -t $clog/guest-labguest.log $clog/guest-labguest--replica.log 2>/dev/null | head -1; }
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
ping_ok() { busybox ping -c 3 -W 5 10.80.0.2 > /tmp/ping.log 2>&1; }
wait_listen() {  # PORT PID
    for i in $(seq 1 90); do
        if listening $1; then return 0; fi
        kill -0 $2 2>/dev/null || fail "receive on :$1 ended before listening"
        sleep 1
    done
    fail "receive is not listening on :$1 after 90 s"
}
# took_over LOG: the replica of that receive runs as labguest.
took_over() {
    for i in $(seq 1 90); do
        if grep -q "is now 'labguest'" $1; then return 0; fi
        sleep 1
    done
    fail "no takeover in $1 within 90 s"
}

ip link set lo up
create_guest /payload/guest-net.cfg labguest
dom=$(xl domid labguest)
wait_counter $clog/guest-labguest.log 4
$R keygen /tmp/lab.key
KEY="--key-file /tmp/lab.key"
TIMING="--heartbeat 200 --heartbeat-timeout 4000"

# ---- 1. protect -> A, handover
op_begin "remus receive A" new
$R -v receive --xen $KEY --config /payload/guest-net.cfg --listen 127.0.0.1:7070 \
    $TIMING --progress 0 > /tmp/recvA.log 2>&1 &
RA=$!
wait_listen 7070 $RA
op_begin "remus protect" $dom
$R -v protect --xen $KEY -i 500 $TIMING --progress 0 --stats-file /tmp/stats \
    labguest 127.0.0.1:7070 > /tmp/prot.log 2>&1 &
PROT=$!
acked() { cat /tmp/stats 2>/dev/null | wc -l; }
for i in $(seq 1 120); do if [ "$(acked)" -ge 4 ]; then break; fi
    kill -0 $PROT 2>/dev/null || fail "protect ended early"; sleep 1; done
[ "$(acked)" -ge 4 ] || fail "not 4 checkpoints acknowledged in 120 s"
before=$(mark $clog/guest-labguest.log)
t0=$(date +%s)
$R handover labguest > /tmp/h1.out 2> /tmp/h1.err || fail "handover 1: $(cat /tmp/h1.err)"
echo "handover 1: $(cat /tmp/h1.out) ($(( $(date +%s) - t0 )) s)"
grep -q "handed over" /tmp/h1.out || fail "handover 1 answered: $(cat /tmp/h1.out)"
rc=0; wait $PROT || rc=$?
op_end "remus protect" $dom
[ $rc -eq 0 ] || fail "protect exited $rc after the handover"
took_over /tmp/recvA.log
grep -q "a handover" /tmp/recvA.log || fail "A did not take over by a handover"
xl domid labguest > /dev/null || fail "no labguest after handover 1"
domA=$(xl domid labguest)
[ "$domA" != "$dom" ] || fail "labguest is still the first domain"
xl list | grep -q "^labguest " || fail "no domain named labguest"
counts_on "$(glog)" "$before" "handover 1 (on A)" || fail "the guest does not count on at A"
ip addr add 10.80.0.1/24 dev vif$domA.0
ping_ok || fail "the guest does not answer pings at A: $(tail -2 /tmp/ping.log)"
kill -0 $RA 2>/dev/null || fail "A ended: it must hold the domain that took over"

# ---- 2. failback: reprotect from A to B (through A's control socket)
op_begin "remus receive B" new
$R -v receive --xen $KEY --config /payload/guest-net.cfg --listen 127.0.0.1:7071 \
    $TIMING --progress 0 > /tmp/recvB.log 2>&1 &
RB=$!
wait_listen 7071 $RB
op_begin "remus reprotect" $domA
t0=$(date +%s)
$R reprotect -i 500 $TIMING labguest 127.0.0.1:7071 2> /tmp/rp.err || fail "reprotect: $(cat /tmp/rp.err)"
echo "reprotect: $(tail -1 /tmp/rp.err) ($(( $(date +%s) - t0 )) s)"
grep -q "protected again by 127.0.0.1:7071" /tmp/rp.err || fail "reprotect said: $(cat /tmp/rp.err)"
grep -q "protecting 'labguest' again, to 127.0.0.1:7071" /tmp/recvA.log || fail "A does not protect labguest again"
sleep 3
before=$(mark "$(glog)")
ifb=$(grep -o "held by a plug qdisc on [a-z0-9]*" /tmp/recvA.log | tail -1 | awk '{print $NF}')
[ -n "$ifb" ] || fail "A's reprotection holds no output"
tc qdisc show dev "$ifb" | grep -q "qdisc plug" || fail "no plug qdisc on $ifb"

# ---- 3. handover back: A -> B
t0=$(date +%s)
$R handover labguest > /tmp/h2.out 2> /tmp/h2.err || fail "handover 2: $(cat /tmp/h2.err)"
echo "handover 2: $(cat /tmp/h2.out) ($(( $(date +%s) - t0 )) s)"
op_end "remus reprotect" $domA
took_over /tmp/recvB.log
rc=0
for i in $(seq 1 60); do kill -0 $RA 2>/dev/null || break; sleep 1; done
wait $RA || rc=$?
op_end "remus receive A" new
[ $rc -eq 3 ] || fail "A exited $rc after handing the domain over, not 3"
xl list
domB=$(xl domid labguest) || fail "no labguest after handover 2"
[ "$domB" != "$domA" ] || fail "labguest is still A's domain"
if xl domid labguest--replica > /dev/null 2>&1; then fail "a domain labguest--replica is left over"; fi
counts_on "$(glog)" "$before" "handover 2 (on B)" || fail "the guest does not count on at B"
ip addr add 10.80.0.1/24 dev vif$domB.0 2>/dev/null || true
ping_ok || fail "the guest does not answer pings at B: $(tail -2 /tmp/ping.log)"

# ---- 4. refusals: B holds the domain but nothing protects it
if $R handover labguest 2> /tmp/e1; then fail "a handover of an unprotected VM succeeded"; fi
grep -q "'labguest' is not being protected here" /tmp/e1 || fail "refusal said: $(cat /tmp/e1)"
if $R reprotect -i 500 labguest 127.0.0.1:7079 2> /tmp/e2; then fail "a reprotect to nowhere succeeded"; fi
# an option of the micro-VMM's: refused by the Xen domain's process, named
if $R reprotect -i 500 --netbuf-max-bytes 65536 labguest 127.0.0.1:7079 2> /tmp/e3; then
    fail "a reprotect with --netbuf-max-bytes succeeded"
fi
grep -q "netbuf-max-bytes bounds the micro-VMM's output queue" /tmp/e3 || fail "--netbuf-max-bytes refused as: $(cat /tmp/e3)"
echo "refusals: $(tail -1 /tmp/e1 | cut -c1-120); $(tail -1 /tmp/e2 | cut -c1-120)"
ping_ok || fail "a refusal disturbed the guest"
kill -TERM $RB
rc=0; wait $RB || rc=$?
op_end "remus receive B" new
[ $rc -eq 3 ] || fail "B exited $rc on SIGTERM, not 3"
xl domid labguest > /dev/null || fail "labguest did not run on after B stopped holding it"
echo "xenfailback: handover to A, reprotect A -> B (full resync), handover to B; the guest counted on through both moves"
