#!/bin/sh
# A benchmark, not a test (`make bench-xen`; not in tests/lab): the disk
# rows of #19, ratios measured in one boot.  The lab guest (lab_dd) writes
# 4 MiB in 64 KiB O_DIRECT writes at 32 MiB of each of its disks in turn,
# every second, and times each with its own clock: "guest: dd DEV BYTES
# START END".  Its disks:
#  - xvda: phy:/dev/nbd0, /tmp/a.img served by `remus disk serve`;
#  - xvdb: phy:/dev/loopN, /tmp/c.img on a plain loop device (the cost of
#    serving the image ourselves: the same kind of file, the kernel's own
#    server), detached before the protected rows (protect refuses an
#    unserved VBD).
# Rows, each the bytes over the time of SAMPLES writes (default 8):
#   1. unprotected: xvda and xvdb, interleaved  -> served / plain
#   2. unprotected, xvda alone                  -> the base of the rest
#   3. protected at 1000 ms                     -> / base
#   4. unprotected again                        -> drift of the base
#   5. protected at 200 ms                      -> / base
# Under TCG absolute figures mean little; the ratios are the point.
set -e
. /payload/scenario-lib.sh
R=/payload/remus
N=${SAMPLES:-8}
RECV= ; PROT=
fail() {
    echo "FAIL: $*"
    echo "--- receive"; tail -15 /tmp/recv.log 2>/dev/null || true
    echo "--- protect"; tail -15 /tmp/prot.log 2>/dev/null || true
    xl list || true; exit 1
}
modprobe nbd nbds_max=4 || fail "no nbd module in dom0's kernel"
modprobe loop 2>/dev/null || true
ip link set lo up
$R keygen /tmp/lab.key

truncate -s 64M /tmp/a.img; truncate -s 64M /tmp/b.img; truncate -s 64M /tmp/c.img
disk_serve /tmp/a.img /dev/nbd0 /tmp/serveA.log || fail "serving /tmp/a.img"
disk_serve /tmp/b.img /dev/nbd1 /tmp/serveB.log || fail "serving /tmp/b.img"
loopdev=$(losetup -f --show /tmp/c.img) || fail "no loop device"
vbd() { echo "\"vdev=$1,access=rw,format=raw,script=/payload/vbd-lab,target=$2\""; }
sed -e 's/^name = .*/name = "labbench"/' -e 's/^extra = "\(.*\)"/extra = "\1 lab_disk lab_dd"/' \
    /payload/guest.cfg > /tmp/a.cfg
cp /tmp/a.cfg /tmp/b.cfg
echo "disk = [ $(vbd xvda /dev/nbd0), $(vbd xvdb "$loopdev") ]" >> /tmp/a.cfg
echo "disk = [ $(vbd xvda /dev/nbd1) ]" >> /tmp/b.cfg
log=/var/log/xen/console/guest-labbench.log
create_guest /tmp/a.cfg labbench
wait_counter $log 4 90 || fail "the guest does not count"

# rate DEV FROM: $RATE, the MiB/s of DEV's first $N samples after line
# FROM of the guest's log (waits for them, at most 600 s).  (Functions
# here that may fail set variables: fail inside $(...) would end only
# the subshell, its message captured.)
rate() {
    for i in $(seq 1 600); do
        if [ "$(tail -n +"$2" $log | tr -d '\r' | grep -ac "^guest: dd $1 ")" -ge "$N" ]; then break; fi
        sleep 1
    done
    tail -n +"$2" $log | tr -d '\r' | grep -a "^guest: dd $1 " | head -n "$N" |
        awk -v n="$N" '{b += $4; t += $6 - $5; k++}
            END {if (k < n || t <= 0) {print "none"; exit 1}; printf "%.2f\n", b / t / 1048576}' \
        > /tmp/rate || fail "fewer than $N samples of $1 in 600 s"
    RATE=$(cat /tmp/rate)
}
here() { echo $(($(wc -l < $log) + 1)); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# protected MS: $RATE, the MiB/s of xvda while protected at MS; the
# protection then ends cleanly (SIGTERM: END; the secondary discards its
# replica)
protected() {
    $R receive --xen --key-file /tmp/lab.key --config /tmp/b.cfg --disk /tmp/b.img --heartbeat 200 --heartbeat-timeout 10000 \
        --listen 127.0.0.1:7071 --progress 0 > /tmp/recv.log 2>&1 &
    RECV=$!
    wait_listen 7071 $RECV || fail "receive is not listening"
    $R protect --xen --key-file /tmp/lab.key -i "$1" --heartbeat 200 --heartbeat-timeout 10000 --progress 0 \
        --stats-file /tmp/stats.$1 labbench 127.0.0.1:7071 > /tmp/prot.log 2>&1 &
    PROT=$!
    for i in $(seq 1 150); do
        if [ "$(cat /tmp/stats.$1 2>/dev/null | wc -l)" -ge 3 ]; then break; fi
        kill -0 $PROT 2>/dev/null || fail "protect ended early"
        sleep 1
    done
    rate /dev/xvda "$(here)"
    kill -TERM $PROT; wait $PROT || fail "protect at $1 ms did not end cleanly"
    wait $RECV || fail "receive did not end cleanly"
    # the replica domain is gone before the next row
    for i in $(seq 1 60); do
        if [ "$(xl list | grep -c labbench)" -le 1 ]; then break; fi
        sleep 1
    done
}

echo "== 1. unprotected, served (xvda) and plain loop (xvdb)"
from=$(here)
rate /dev/xvda "$from"; served=$RATE
rate /dev/xvdb "$from"; plain=$RATE
echo "served $served MiB/s, plain loop $plain MiB/s"
xl block-detach labbench xvdb || fail "xvdb could not be detached"
sleep 3
echo "== 2. unprotected, xvda alone"
rate /dev/xvda "$(here)"; base=$RATE
echo "unprotected $base MiB/s"
echo "== 3. protected at 1000 ms"
protected 1000; p1000=$RATE
echo "protected at 1000 ms: $p1000 MiB/s"
echo "== 4. unprotected again"
rate /dev/xvda "$(here)"; base2=$RATE
echo "unprotected $base2 MiB/s"
echo "== 5. protected at 200 ms"
protected 200; p200=$RATE
echo "protected at 200 ms: $p200 MiB/s"
xl destroy labbench

pause() { sort -n -k2 "$1" | awk '{a[NR] = $2} END {printf "%d", a[int((NR + 1) / 2)]}'; }
echo "xendiskbench: the guest's O_DIRECT write throughput, one boot, $N samples a row"
echo "| row | MiB/s | ratio |"
echo "|---|---|---|"
echo "| served by remus disk serve (unprotected) | $served | $(ratio "$served" "$plain") of the plain loop |"
echo "| plain loop device | $plain | 1 |"
echo "| unprotected, xvda alone | $base | 1 |"
echo "| protected at 1000 ms (pause p50 $(pause /tmp/stats.1000) us) | $p1000 | $(ratio "$p1000" "$base") |"
echo "| unprotected again | $base2 | $(ratio "$base2" "$base") |"
echo "| protected at 200 ms (pause p50 $(pause /tmp/stats.200) us) | $p200 | $(ratio "$p200" "$base2") of the row above |"
