#!/bin/sh
# Every device of a protected Xen guest (issue #17), both ends in this dom0.
#  1. A PVH guest with two VIFs (guest-2vif.cfg) protected by `remus
#     protect --xen` to `remus receive --xen`: each VIF's output is held by
#     its own plug qdisc until each checkpoint is acknowledged (pings
#     through either VIF take about an interval); a clean stop removes
#     every IFB and ingress redirect, the guest counts on, and Xen's own
#     `xl save -c` suspends it (xenstored was told, when protection
#     ended, that it runs again).  Before that,
#     with the second VIF's ingress taken, the protection is refused naming
#     it, and nothing is left on the first.
#  2. A device model (libxl's key image/device-model-pid written by hand:
#     this dom0 has no QEMU) refuses the protection: its state is not
#     checkpointed.
#  3. A PVH guest with a disk (VBD, blkback on a loop device in dom0) is
#     refused without -F -d, the message naming the VBD; with -F -d (into a
#     blackhole: no secondary needed) it is protected, with a warning naming
#     the disk that is NOT replicated.  Its secondary lost (SIGKILL), the
#     -F -d protection holds the domain: `remus reprotect` without -F -d
#     is refused naming the VBD, -d without -F is a usage error, with
#     -F -d it is protected again (the warning again), stopped cleanly.
#  4. A page populated above that guest's highest frame while it is
#     protected (tests/support/xen_grow_p2m: its p2m grows, as with memory
#     hotplug) aborts the protection with the reason; the guest counts on.
# Every check is made and counted (FAIL: ...); the scenario fails at the
# end when one failed.  Setup failures end it at once.
set -e
. /payload/scenario-lib.sh
R=/payload/remus
log=/var/log/xen/console/guest-labguest.log
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
logs() {  # logs N: the last N lines of each remus log written so far
    for f in /tmp/recv.log /tmp/prot.log /tmp/dprot.log /tmp/rrecv.log /tmp/hprot.log \
             /tmp/rrecv2.log /tmp/gprot.log; do
        if [ -s $f ]; then echo "--- $f"; tail -"$1" $f; fi
    done
}
fail() { echo "FAIL: $*"; logs 30; xl list
         # Guests left running (a replica that took over beside its primary)
         # can starve dom0 under TCG: pause them so that the results come back.
         for d in $(xl list | awk 'NR > 2 {print $1}'); do xl pause "$d" || true; done
         exit 1; }
avg_rtt() {   # avg_rtt ADDRESS COUNT: the average rtt in ms, empty if none
    busybox ping -c "$2" -W 5 "$1" > /tmp/ping.log 2>&1 || true; tail -2 /tmp/ping.log >&2
    sed -n 's/.*min\/avg\/max = [0-9.]*\/\([0-9]*\)\..*/\1/p' /tmp/ping.log; }

ip link set lo up
$R keygen /tmp/lab.key
# A 10 s heartbeat timeout: other QEMUs on the host can starve dom0 for
# seconds (lab/xen/README.md), and a failover is not what is tested here.

echo "== 1. two VIFs, both held"
create_guest /payload/guest-2vif.cfg labguest
dom=$(xl domid labguest)
wait_counter $log 4 60 || fail "the guest does not count"
for k in 0 1; do
    grep -q "guest: eth$k up" $log || { tail $log; fail "the guest's eth$k did not come up"; }
    ip addr add 10.80.$k.1/24 dev vif$dom.$k
    base=$(avg_rtt 10.80.$k.2 3)
    [ -n "$base" ] || fail "the guest does not answer pings through vif$dom.$k"
    echo "unprotected, through vif$dom.$k: avg rtt ${base} ms"
done
echo "== 1a. a VIF whose plug cannot be set up: refused, naming it; nothing left on the other"
tc qdisc add dev vif$dom.1 ingress    # taken: the plug's ingress redirect cannot be added
rc=0; ours $dom $R protect --xen --key-file /tmp/lab.key -i 1000 labguest 127.0.0.1:7070 > /tmp/vif1.log 2>&1 || rc=$?
cat /tmp/vif1.log
[ $rc = 1 ] || bad "protect with vif$dom.1's ingress taken: exit $rc, not 1"
grep -q "cannot hold the output of VIF vif$dom.1 " /tmp/vif1.log || bad "the refusal does not name vif$dom.1"
if tc qdisc show dev vif$dom.0 ingress | grep -q "qdisc ingress"; then bad "vif$dom.0's ingress redirect is left after the refusal"; fi
if ip -o link show | grep -q ": rmifb"; then ip -o link show | grep rmifb; bad "an IFB is left after the refusal"; fi
tc qdisc del dev vif$dom.1 ingress
echo "== 1b. protected: both VIFs held"
op_begin "remus receive" new
$R -v receive --xen --key-file /tmp/lab.key --config /payload/guest-2vif.cfg --listen 127.0.0.1:7070 \
    --heartbeat 200 --heartbeat-timeout 10000 --progress 0 > /tmp/recv.log 2>&1 &
RECV=$!
wait_listen 7070 $RECV || fail "receive is not listening (or ended) after 90 s"
op_begin "remus protect" $dom
$R -v protect --xen --key-file /tmp/lab.key -i 1000 --heartbeat 200 --heartbeat-timeout 10000 \
    --progress 2000 --stats-file /tmp/stats labguest 127.0.0.1:7070 > /tmp/prot.log 2>&1 &
PROT=$!
wait_acked /tmp/stats 5 120 $PROT || fail "not 5 checkpoints acknowledged in 120 s (or protect ended)"
grep "plug qdisc\|VIFs is held" /tmp/prot.log || true
ifbs=""
for k in 0 1; do
    v=vif$dom.$k
    kill -0 $PROT 2>/dev/null || fail "protect ended during the checks"
    kill -0 $RECV 2>/dev/null || fail "receive ended during the checks"
    ifb=$(sed -n "s/.*output of $v held by a plug qdisc on \([a-z0-9]*\).*/\1/p" /tmp/prot.log | head -1)
    if [ -z "$ifb" ]; then
        bad "no IFB holds $v's output"
    else
        ifbs="$ifbs $ifb"
        tc qdisc show dev "$ifb" | grep -q "qdisc plug" || bad "no plug qdisc on $ifb ($v)"
        tc qdisc show dev "$v" ingress | grep -q "qdisc ingress" || bad "no ingress qdisc on $v"
    fi
    held=$(avg_rtt 10.80.$k.2 6)
    echo "protected (1000 ms checkpoints), through $v: avg rtt ${held:-none} ms"
    [ "${held:-0}" -ge 100 ] || bad "$v's output was not held until the acknowledgement (avg rtt ${held:-none} ms)"
done
before=$(mark $log)
kill -TERM $PROT
rc=0; wait $PROT || rc=$?
op_end "remus protect" $dom
echo "remus protect exited $rc after SIGTERM"; tail -5 /tmp/prot.log
[ $rc = 0 ] || bad "protect did not end cleanly on SIGTERM (exit $rc)"
for _ in $(seq 1 30); do kill -0 $RECV 2>/dev/null || break; sleep 1; done
if kill -0 $RECV 2>/dev/null; then bad "receive still runs 30 s after the primary's clean stop"; kill -9 $RECV; fi
rc=0; wait $RECV || rc=$?
op_end "remus receive" new
echo "remus receive exited $rc"; tail -5 /tmp/recv.log
for ifb in $ifbs; do
    if ip link show "$ifb" > /dev/null 2>&1; then bad "IFB $ifb is left after protect ended"; fi
done
for k in 0 1; do
    if tc qdisc show dev vif$dom.$k ingress | grep -q "qdisc ingress"; then bad "vif$dom.$k's ingress redirect is left"; fi
    [ -n "$(avg_rtt 10.80.$k.2 2)" ] || bad "no ping answered through vif$dom.$k after protect ended"
done
counts_on $log "$before" "the end of protection" || bad "the guest does not count on after protection ended"
# Xen's own toolstack after remus: libxl sees a guest's suspend only through
# xenstored's @releaseDomain, which xenstored fires once per shutdown until
# it is told the domain runs again (XS_RESUME, when protection ends); without
# that, `xl save` waits 60 s for a suspend it cannot see and gives up.
t0=$(date +%s)
if ours $dom timeout 45 xl save -c labguest /tmp/after.save > /tmp/xlsave.log 2>&1; then
    echo "xl save -c after protection ended: $(( $(date +%s) - t0 )) s"
else
    tail -4 /tmp/xlsave.log
    bad "xl save -c of the guest failed after protection ended ($(( $(date +%s) - t0 )) s: xenstored not told that it runs again?)"
fi
rm -f /tmp/after.save
xl destroy labguest
xl destroy labguest--replica 2>/dev/null || true

echo "== 2. a device model is refused"
modprobe loop 2>/dev/null || true
dd if=/dev/zero of=/tmp/disk.img bs=1M count=8 2>/dev/null
loopdev=$(losetup -f --show /tmp/disk.img) || fail "no loop device for the VBD"
sed -e 's/^name = .*/name = "labdisk"/' /payload/guest.cfg > /tmp/disk.cfg
echo "disk = [ \"vdev=xvda,access=rw,format=raw,script=/payload/vbd-lab,target=$loopdev\" ]" >> /tmp/disk.cfg
create_guest /tmp/disk.cfg labdisk || fail "xl create of a guest with a VBD on $loopdev failed"
ddom=$(xl domid labdisk)
dlog=/var/log/xen/console/guest-labdisk.log
wait_counter $dlog 4 60 || fail "the guest with a VBD does not count"
xenstore-ls /local/domain/$ddom/device/vbd | head -20
dmkey=/local/domain/$ddom/image/device-model-pid
xenstore-write $dmkey 4242
rc=0; ours $ddom $R protect --xen --key-file /tmp/lab.key -i 1000 labdisk 127.0.0.1:7071 > /tmp/dm.log 2>&1 || rc=$?
cat /tmp/dm.log
[ $rc = 1 ] || bad "protect of a domain with a device model: exit $rc, not 1"
grep -q "device model state is not checkpointed" /tmp/dm.log || bad "the device model is not refused"
grep -q "$dmkey" /tmp/dm.log || bad "the refusal does not say what shows the device model ($dmkey)"
xenstore-rm $dmkey

echo "== 3. a VBD is refused without -F -d, named"
rc=0; ours $ddom $R protect --xen --key-file /tmp/lab.key -i 1000 labdisk 127.0.0.1:7071 > /tmp/vbd.log 2>&1 || rc=$?
cat /tmp/vbd.log
[ $rc = 1 ] || bad "protect of a domain with a VBD: exit $rc, not 1"
grep -q "does not replicate: xvda (phy:$loopdev)" /tmp/vbd.log || bad "the VBD is not refused, named (xvda, $loopdev)"
grep -q "use -F -d" /tmp/vbd.log || bad "the refusal does not say -F -d"

echo "== 3b. with -F -d: protected, the disk named as NOT replicated"
op_begin "remus protect -F -d" $ddom
$R -v protect --xen -F -d -b -i 500 --progress 0 --stats-file /tmp/dstats labdisk > /tmp/dprot.log 2>&1 &
DPROT=$!
wait_acked /tmp/dstats 3 90 $DPROT || bad "protect -F -d: not 3 checkpoints in 90 s"
grep -q "NOT replicated: xvda (phy:$loopdev)" /tmp/dprot.log || bad "no warning naming the unreplicated VBD"
grep "NOT replicated" /tmp/dprot.log || true
kill -TERM $DPROT 2>/dev/null || true
rc=0; wait $DPROT || rc=$?
op_end "remus protect -F -d" $ddom
tail -3 /tmp/dprot.log
[ $rc = 0 ] || bad "protect -F -d did not end cleanly (exit $rc)"

echo "== 3c. its secondary lost, the -F -d protection holds the domain; reprotect needs -F -d too"
dd if=/dev/zero of=/tmp/disk-r.img bs=1M count=8 2>/dev/null
rloop=$(losetup -f --show /tmp/disk-r.img) || fail "no loop device for the replica's VBD"
sed -e "s|target=$loopdev|target=$rloop|" /tmp/disk.cfg > /tmp/disk-r.cfg
TIMING="--heartbeat 200 --heartbeat-timeout 4000"
start_recv() {  # PORT LOG: a receiver for labdisk, listening, its pid in $RR
    $R -v receive --xen --key-file /tmp/lab.key --config /tmp/disk-r.cfg --listen 127.0.0.1:$1 \
        $TIMING --progress 0 > $2 2>&1 &
    RR=$!
    wait_listen $1 $RR || fail "receive on :$1 is not listening (or ended) after 90 s: $(tail -3 $2)"
}
op_begin "remus receive (3c)" new
start_recv 7072 /tmp/rrecv.log
op_begin "remus protect -F -d (3c)" $ddom
$R -v protect --xen -F -d --key-file /tmp/lab.key -i 500 $TIMING --progress 0 --stats-file /tmp/hstats \
    labdisk 127.0.0.1:7072 > /tmp/hprot.log 2>&1 &
HPROT=$!
wait_acked /tmp/hstats 3 120 $HPROT || fail "protect -F -d to a secondary: not 3 checkpoints in 120 s (or it ended): $(tail -3 /tmp/hprot.log)"
kill -9 $RR; wait $RR 2>/dev/null || true         # the secondary's host dies
op_end "remus receive (3c)" new
xl destroy labdisk--replica 2>/dev/null || true  # (what that host ran)
for _ in $(seq 1 60); do if grep -q "secondary lost" /tmp/hprot.log; then break; fi; sleep 1; done
grep -q "secondary lost" /tmp/hprot.log || fail "protect did not lose its secondary in 60 s: $(tail -3 /tmp/hprot.log)"
kill -0 $HPROT 2>/dev/null || fail "protect -F -d ended after losing its secondary (it must hold the domain): $(tail -3 /tmp/hprot.log)"
op_begin "remus receive (3c, again)" new
start_recv 7073 /tmp/rrecv2.log
rc=0; $R reprotect -i 500 $TIMING labdisk 127.0.0.1:7073 2> /tmp/rp0.err || rc=$?
cat /tmp/rp0.err
[ $rc = 1 ] || bad "reprotect without -F -d of a domain with an unserved VBD: exit $rc, not 1"
grep -q "does not replicate: xvda" /tmp/rp0.err || bad "reprotect's refusal does not name the VBD"
grep -q "use -F -d" /tmp/rp0.err || bad "reprotect's refusal does not say -F -d"
rc=0; $R reprotect -d labdisk 127.0.0.1:7073 2> /tmp/rp1.err || rc=$?
[ $rc = 2 ] || bad "reprotect -d without -F: exit $rc, not 2"
grep -q "needs -F" /tmp/rp1.err || bad "reprotect -d without -F does not say -F: $(cat /tmp/rp1.err)"
kill -0 $RR 2>/dev/null || fail "the refusals ended the receiver: $(tail -3 /tmp/rrecv2.log)"
$R reprotect -F -d -i 500 $TIMING labdisk 127.0.0.1:7073 2> /tmp/rp2.err || fail "reprotect -F -d: $(cat /tmp/rp2.err)"
cat /tmp/rp2.err
grep -q "protected again by 127.0.0.1:7073" /tmp/rp2.err || bad "reprotect -F -d said: $(cat /tmp/rp2.err)"
grep -q "disks NOT replicated (-F -d)" /tmp/hprot.log || bad "the reprotection does not say that the disks are not replicated"
[ "$(grep -c "NOT replicated: xvda (phy:$loopdev)" /tmp/hprot.log)" -ge 2 ] || bad "the reprotection's warning does not name the unreplicated VBD"
hmark=$(mark $dlog)
$R reprotect --stop labdisk 2> /tmp/rp3.err || bad "reprotect --stop: $(cat /tmp/rp3.err)"
rc=0; for _ in $(seq 1 30); do kill -0 $RR 2>/dev/null || break; sleep 1; done; wait $RR || rc=$?
op_end "remus receive (3c, again)" new
[ $rc = 0 ] || bad "the receiver of the reprotection exited $rc after its clean stop, not 0"
kill -TERM $HPROT 2>/dev/null || true
rc=0; wait $HPROT || rc=$?
op_end "remus protect -F -d (3c)" $ddom
[ $rc = 0 ] || bad "protect -F -d holding the domain exited $rc on SIGTERM, not 0"
counts_on $dlog "$hmark" "the reprotection with -F -d" || bad "the guest does not count on after the reprotection"
losetup -d $rloop || true

echo "== 4. the p2m grows under protection: aborted, saying so"
xl mem-max labdisk 192 || true    # room for the page added below
op_begin "remus protect (the p2m grows)" $ddom
$R -v protect --xen -F -d -b -i 500 --progress 0 --stats-file /tmp/gstats labdisk > /tmp/gprot.log 2>&1 &
GPROT=$!
wait_acked /tmp/gstats 2 90 $GPROT || bad "protect (p2m): not 2 checkpoints in 90 s"
gmark=$(mark $dlog)
/payload/xen_grow_p2m $ddom 0x120000 || bad "xen_grow_p2m could not populate pfn 0x120000 of domain $ddom"
for _ in $(seq 1 30); do kill -0 $GPROT 2>/dev/null || break; sleep 1; done
if kill -0 $GPROT 2>/dev/null; then bad "protect goes on 30 s after the p2m grew"; kill -TERM $GPROT; fi
rc=0; wait $GPROT || rc=$?
op_end "remus protect (the p2m grows)" $ddom
tail -4 /tmp/gprot.log
[ $rc != 0 ] || bad "protect ended with exit 0 after the p2m grew"
grep -q "p2m grew from" /tmp/gprot.log || bad "protect does not say that the p2m grew"
counts_on $dlog "$gmark" "the aborted protection" || bad "the guest does not count on after the aborted protection"
xl destroy labdisk
losetup -d $loopdev || true

if [ $fails != 0 ]; then
    logs 15
    echo "xendevices: $fails check(s) failed"; exit 1
fi
echo "xendevices: both VIFs held and released by their plugs; a device model refused; a VBD refused, named, and with -F -d protected with a warning, and reprotected with -F -d after its secondary was lost; a grown p2m aborts the protection"
