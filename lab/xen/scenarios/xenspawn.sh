#!/bin/sh
# One command on Xen: `remus protect --xen DOMAIN HOST` starts its own
# receiver through -s CMD (here `env`, so that `exec env LAB=1 remus
# receive ...` runs it in this dom0, the lab's one "other host"), with the
# key on its stdin; checkpoints are acknowledged; then the primary dies
# (protect killed -9, its domain destroyed): the receiver it started lives
# on, takes over, and the guest counts on (same boot) under its name.
set -e
. /payload/scenario-lib.sh
R=/payload/remus
clog=/var/log/xen/console
fail() { echo "FAIL: $*"; echo "--- protect (with the receiver's relayed log)"; tail -40 /tmp/prot.log; xl list; exit 1; }
ip link set lo up
create_guest /payload/guest-net.cfg labguest
dom=$(xl domid labguest)
wait_counter $clog/guest-labguest.log 4
$R keygen /tmp/lab.key
op_begin "remus protect (and the receiver it starts)" $dom
$R -v protect --xen --key-file /tmp/lab.key -i 500 --heartbeat 200 --heartbeat-timeout 4000 \
    --progress 0 --stats-file /tmp/stats -s env --remote-remus $R --peer-addr 127.0.0.1 \
    --peer-config /payload/guest-net.cfg --peer-timeout 120000 labguest LAB=1 > /tmp/prot.log 2>&1 &
PROT=$!
acked() { cat /tmp/stats 2>/dev/null | wc -l; }
for i in $(seq 1 180); do if [ "$(acked)" -ge 4 ]; then break; fi
    kill -0 $PROT 2>/dev/null || fail "protect ended early"; sleep 1; done
[ "$(acked)" -ge 4 ] || fail "not 4 checkpoints acknowledged in 180 s"
grep -q "the receiver (pid [0-9]* here) listens: connecting to 127.0.0.1:" /tmp/prot.log || fail "protect did not connect to the announced port"
rpid=$(sed -n 's/.*the receiver (pid \([0-9]*\) here) listens.*/\1/p' /tmp/prot.log | head -1)
tr '\0' ' ' < /proc/$rpid/cmdline | grep -q -- "--key-file -" || fail "the receiver's key is not read from stdin"
if tr '\0' ' ' < /proc/$rpid/cmdline | grep -q "$(head -c 64 /tmp/lab.key)"; then fail "the key is on a command line"; fi
before=$(mark $clog/guest-labguest.log)
n=$(acked)
for i in $(seq 1 60); do if [ "$(acked)" -ge $((n + 2)) ]; then break; fi; sleep 1; done
# The primary's host dies: protect killed, its domain destroyed.
kill -9 $PROT
xl destroy labguest
op_end "remus protect (and the receiver it starts)" $dom
for i in $(seq 1 90); do
    if xl domid labguest > /dev/null 2>&1; then break; fi
    kill -0 $rpid 2>/dev/null || fail "the spawned receiver died with its primary"
    sleep 1
done
new=$(xl domid labguest) || fail "no domain named labguest after the primary's death"
[ "$new" != "$dom" ] || fail "labguest is still the old domain"
kill -0 $rpid 2>/dev/null || fail "the receiver that took over does not hold the domain"
counts_on "$(ls -t $clog/guest-labguest*.log | head -1)" "$before" "the primary's death (the spawned receiver's replica)" || fail "the guest does not count on"
kill -TERM $rpid
for i in $(seq 1 30); do kill -0 $rpid 2>/dev/null || break; sleep 1; done
if kill -0 $rpid 2>/dev/null; then fail "the receiver did not end on SIGTERM"; fi
xl domid labguest > /dev/null || fail "labguest did not run on after its holder ended"
echo "xenspawn: protect --xen DOMAIN HOST started its receiver (-s env), keyed over stdin; after the primary's death that receiver took over and the guest counted on"
