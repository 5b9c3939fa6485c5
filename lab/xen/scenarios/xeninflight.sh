#!/bin/sh
# Writes in flight at a checkpoint's cut are issued again by blkfront on
# the replica (#19: "prove this in the lab, do not assume it").
#
# Why it needs forcing: in this lab a Linux guest's suspend takes about a
# second, and blkback serves every request in that time: across 272
# checkpoints of a guest writing continuously, no write reached the disk
# log between a cut and its resume (the stats' 7th column).  So:
#  - the primary's disk /tmp/a.img is served on /dev/nbd0, the
#    secondary's /tmp/b.img on /dev/nbd1 (as in xendisk);
#  - the guest (lab_aio, lab_norec) runs only lab-aio (rootfs/lab-aio.c):
#    two 256 KiB O_DIRECT writes always in flight with Linux AIO, one
#    console line per submit and per completion.  With AIO the writing
#    task returns to user space, so a suspend's freezer does not wait for
#    its writes (a task blocked in a read or write cannot be frozen, and
#    the guest does not suspend: a second try of this scenario, whose
#    guest read each write back, never suspended with its disk held);
#  - protected at 1 s; after 5 checkpoints the primary's disk server
#    holds its requests (`--hold-while FILE`, FILE created): the guest's
#    writes wait in blkback and nbd, unanswered, while two more
#    checkpoints are cut and acknowledged.  (Not SIGSTOP: a stopped
#    server's NBD_DO_IT wait is interrupted and the kernel ends the
#    device, failing every request: the first try of this scenario);
#  - kill -9 of protect, the guest paused, the hold released, the guest
#    destroyed: the writes in flight never reached the primary's disk
#    log, so the replica's image lacks them;
#  - the replica resumes from a checkpoint cut with the server stopped,
#    its blkfront reconnects to /dev/nbd1.
# Check: the replica completes writes it never submitted (each submitted
# by the primary: they were in flight at the cut), each one's data is on
# the replica's image (its first and last 4 KiB), then it writes on.  Negative control of
# the check: the same logs without those completions fail it.
set -e
. /payload/scenario-lib.sh
R=/payload/remus
SA= ; SB= ; RECV= ; PROT=
fail() {
    rm -f /tmp/hold
    echo "FAIL: $*"
    echo "--- receive"; tail -25 /tmp/recv.log 2>/dev/null || true
    echo "--- protect"; tail -25 /tmp/prot.log 2>/dev/null || true
    echo "--- disk servers"; tail -8 /tmp/serveA.log /tmp/serveB.log 2>/dev/null || true
    echo "-- dom0's dmesg:"; dmesg | tail -10
    xl list || true; exit 1
}
modprobe nbd nbds_max=4 || fail "no nbd module in dom0's kernel"
ip link set lo up
$R keygen /tmp/lab.key

cfg() {
    sed -e "s/^name = .*/name = \"$1\"/" -e 's/^extra = "\(.*\)"/extra = "\1 lab_disk lab_aio lab_norec"/' \
        /payload/guest.cfg > "$3"
    echo "disk = [ \"vdev=xvda,access=rw,format=raw,script=/payload/vbd-lab,target=$2\" ]" >> "$3"
}

# slot_holds IMG SEQ SLOT TOKEN: the first and last 4 KiB of lab-aio's
# slot SLOT (256 KiB at 40 MiB + SLOT * 256 KiB) of IMG begin with write
# SEQ's line (lab-aio.c)
slot_holds() {
    for blk in 0 63; do
        got=$(dd if="$1" bs=4096 skip=$((10240 + $3 * 64 + blk)) count=1 2>/dev/null | head -1 | tr -d '\0')
        [ "$got" = "aio $2 $3 $BOOT $4" ] || { echo "slot $3 of $1 (block $blk) holds '$got', not write $2's"; return 1; }
    done
}

# reissued PLOG RLOG IMG LINES: the writes the replica completed but never
# submitted (in flight at the cut it resumed from: blkfront issued them
# again) are at least one, each submitted by the primary, each one's data
# in IMG (a copy of the replica's image taken when RLOG had LINES lines:
# each of them completed within those, its slot not yet reused); every
# completion on the replica is whole, and it completed 3 of its own.
# Prints why not and fails.  Leaves the writes issued again in
# /tmp/aio.again ("SEQ TOKEN" lines).
reissued() {
    tr -d '\r' < "$1" | grep -a "^guest: aio submit " | awk '{print $4, $6}' | LC_ALL=C sort -u > /tmp/aio.psub
    tr -d '\r' < "$2" | grep -a "^guest: aio submit " | awk '{print $4, $6}' | LC_ALL=C sort -u > /tmp/aio.rsub
    tr -d '\r' < "$2" | grep -a "^guest: aio done " | awk '{print $4, $6, $7}' > /tmp/aio.rdone
    # (a kernel message can land in the middle of a console line: "ok[";
    # a failed write says BAD)
    bad=$(awk '$3 !~ /^ok/' /tmp/aio.rdone | head -1)
    [ -z "$bad" ] || { echo "the replica's write $bad failed"; return 1; }
    awk '{print $1, $2}' /tmp/aio.rdone | LC_ALL=C sort -u | LC_ALL=C comm -23 - /tmp/aio.rsub > /tmp/aio.again
    [ -s /tmp/aio.again ] || { echo "the replica completed no write it did not submit: none in flight at the cut was issued again"; return 1; }
    stray=$(LC_ALL=C comm -23 /tmp/aio.again /tmp/aio.psub | head -1)
    [ -z "$stray" ] || { echo "the replica completed write $stray, which neither side submitted"; return 1; }
    own=$(awk '{print $1, $2}' /tmp/aio.rdone | LC_ALL=C sort -u | LC_ALL=C comm -12 - /tmp/aio.rsub | wc -l)
    [ "$own" -ge 3 ] || { echo "the replica completed only $own writes of its own"; return 1; }
    head -n "$4" "$2" | tr -d '\r' > /tmp/aio.rcopy
    while read -r seq tok; do
        slot=$(tr -d '\r' < "$1" | grep -a "^guest: aio submit $seq .* $tok" | head -1 | awk '{print $5}')
        grep -aq "^guest: aio done $seq $slot $tok" /tmp/aio.rcopy ||
            { echo "write $seq, issued again, completed only after the copy of the image (the scenario copied too early)"; return 1; }
        later=$(awk -v seq="$seq" -v slot="$slot" '$1 == "guest:" && $2 == "aio" && $3 == "submit" && $4 + 0 > seq + 0 && $5 == slot { print $4; exit }' /tmp/aio.rcopy)
        [ -z "$later" ] ||
            { echo "slot $slot of write $seq, issued again, was reused by write $later before the copy of the image (the scenario copied too late)"; return 1; }
        slot_holds "$3" "$seq" "$slot" "$tok" || return 1
    done < /tmp/aio.again
    echo "$(wc -l < /tmp/aio.again) write(s) the primary submitted, in flight at the cut, completed on the replica, issued again by blkfront ($(tr '\n' ' ' < /tmp/aio.again)), each one's data on its image; then $own of its own"
}

truncate -s 64M /tmp/a.img; truncate -s 64M /tmp/b.img
disk_serve /tmp/a.img /dev/nbd0 /tmp/serveA.log "--hold-while /tmp/hold" || fail "serving /tmp/a.img"; SA=$SRV
disk_serve /tmp/b.img /dev/nbd1 /tmp/serveB.log || fail "serving /tmp/b.img"; SB=$SRV
cfg labio /dev/nbd0 /tmp/a.cfg
cfg labio /dev/nbd1 /tmp/b.cfg
create_guest /tmp/a.cfg labio
dom=$(xl domid labio)
plog=/var/log/xen/console/guest-labio.log
rlog=/var/log/xen/console/guest-labio--replica.log
wait_counter $plog 4 90 || fail "the guest does not count"
for i in $(seq 1 60); do
    if tr -d '\r' < $plog | grep -aq "^guest: aio done .* ok"; then break; fi
    sleep 1
done
tr -d '\r' < $plog | grep -aq "^guest: aio done .* ok" || fail "lab-aio completes no write"
# a heartbeat timeout of 10 s: under TCG, with the guest writing, its
# suspend alone took up to 2 s, and a checkpoint sends nothing meanwhile
op_begin "remus receive" new
$R -v receive --xen --key-file /tmp/lab.key --config /tmp/b.cfg --disk /tmp/b.img \
    --listen 127.0.0.1:7071 --heartbeat 200 --heartbeat-timeout 10000 --progress 0 > /tmp/recv.log 2>&1 &
RECV=$!
wait_listen 7071 $RECV || fail "receive is not listening"
op_begin "remus protect" $dom
$R -v protect --xen --key-file /tmp/lab.key -i 1000 --heartbeat 200 --heartbeat-timeout 10000 \
    --progress 0 --stats-file /tmp/stats labio 127.0.0.1:7071 > /tmp/prot.log 2>&1 &
PROT=$!
acked() { cat /tmp/stats 2>/dev/null | wc -l; }
for i in $(seq 1 150); do if [ "$(acked)" -ge 5 ]; then break; fi
    kill -0 $PROT 2>/dev/null || fail "protect ended early"; sleep 1; done
[ "$(acked)" -ge 5 ] || fail "not 5 checkpoints acknowledged in 150 s"
before=$(mark $plog)
n=$(acked)
echo "== the primary's disk server holds its requests after checkpoint $(tail -1 /tmp/stats | awk '{print $1}')"
touch /tmp/hold
# the second checkpoint acknowledged after the stop was cut after the
# first one's acknowledgement, so with the requests held
for i in $(seq 1 600); do if [ "$(acked)" -ge $((n + 2)) ]; then break; fi
    kill -0 $PROT 2>/dev/null || fail "protect ended early"
    sleep 0.1; done
kill -9 $PROT
[ "$(acked)" -ge $((n + 2)) ] || fail "not 2 checkpoints acknowledged in 60 s with the disk's requests held"
stalled=$(sed -n "$((n + 2))p" /tmp/stats | awk '{print $1}')
op_end "remus protect" $dom
# the primary paused (it prints nothing more), then its server goes on,
# so that blkback's requests end and the domain can go
xl pause labio
rm /tmp/hold
xl destroy labio
for i in $(seq 1 90); do
    if grep -q "is now 'labio'\|still exists on this host" /tmp/recv.log; then break; fi
    kill -0 $RECV 2>/dev/null || break; sleep 1; done
grep -q "FAILOVER" /tmp/recv.log || fail "receive did not fail over"
from=$(grep -a "FAILOVER" /tmp/recv.log | sed -n 's/.*resumed from checkpoint \([0-9]*\).*/\1/p' | head -1)
[ -n "$from" ] && [ "$from" -ge "$stalled" ] ||
    fail "the replica resumed from checkpoint '$from', not from $stalled or later (cut with the requests held)"
echo "the replica resumed from checkpoint $from, cut with the primary's disk requests held"
[ -f $rlog ] || fail "no console log of the replica"
# a copy of the replica's image soon after its first 3 completions, the
# replica paused meanwhile: lab-aio reuses a slot 96 writes later, and the
# writes issued again must still be in theirs.  The log's length once it
# stopped growing (what the replica printed before the pause) tells the
# check which completions and submissions came before the copy.
for i in $(seq 1 900); do
    if [ "$(tr -d '\r' < $rlog | grep -ac "^guest: aio done ")" -ge 3 ]; then break; fi
    sleep 0.1
done
xl pause labio
prev=-1; copy_lines=$(wc -l < $rlog)
for _i in $(seq 1 20); do
    if [ "$copy_lines" = "$prev" ]; then break; fi
    sleep 0.5; prev=$copy_lines; copy_lines=$(wc -l < $rlog)
done
cp /tmp/b.img /tmp/b.snap
xl unpause labio
echo "the replica's image copied, its console log $copy_lines lines long"
counts_on $rlog "$before" "the primary's death (on the replica)" || fail "the replica does not count on"
for i in $(seq 1 90); do
    if [ "$(tr -d '\r' < $rlog | grep -ac "^guest: aio done ")" -ge 8 ]; then break; fi
    sleep 1
done
xl pause labio
xl destroy labio
kill -TERM $RECV 2>/dev/null || true; wait $RECV || true
op_end "remus receive" new
kill -TERM $SA $SB 2>/dev/null || true; wait $SA || true; wait $SB || true
BOOT=$(tr -d '\r' < $plog | grep -a -m1 "guest: counter" | awk '{print $5}')
reissued $plog $rlog /tmp/b.snap $copy_lines || fail "a write in flight at the cut was not issued again on the replica"
# negative control of the check: the replica's completions of those
# writes removed, as if blkfront had dropped them
awk '{print $2}' /tmp/aio.again > /tmp/aio.again.tok
grep -a -v -F -f /tmp/aio.again.tok $rlog > /tmp/rlog.dropped || true
if reissued $plog /tmp/rlog.dropped /tmp/b.snap $copy_lines > /tmp/aio.neg; then
    fail "negative control: the check passed without the writes issued again ($(cat /tmp/aio.neg))"
fi
echo "negative control ok: without them the check fails ($(cat /tmp/aio.neg))"
echo "disk writes that reached the log between a cut and its resume: $(awk '{s += $7} END {print s + 0}' /tmp/stats) in $(wc -l < /tmp/stats) checkpoints"
echo "xeninflight: writes in flight at the cut are issued again by the replica's blkfront and land on its disk"
