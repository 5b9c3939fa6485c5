#!/bin/sh
# `remus disk serve --device /dev/nbd0` in dom0 (#19's first part: the
# kernel's NBD device on an image that remus serves):
#  1. dom0's own I/O on /dev/nbd0 (O_DIRECT writes, reads, a discard)
#     reaches the image and reads back; SIGTERM detaches the device;
#  2. negative control: on a read-only export dom0's write fails and the
#     image stays as it was;
#  3. a PVH guest whose disk is phy:/dev/nbd0 (blkfront -> blkback -> nbd
#     -> remus -> the image) writes a record per counter tick and flushes
#     it (guest-init's lab_disk, dd conv=fsync) before it reports it:
#     every record it reported is in the image when it has reported ten;
#  4. negative controls: the same guest on a read-only export: the check of
#     step 3 fails (no record reaches the image); step 3's records looked
#     for in that other image are not found.
set -e
. /payload/scenario-lib.sh
R=/payload/remus
SRV=
fail() {
    echo "FAIL: $*"
    [ -z "$SRV" ] || kill -TERM $SRV 2>/dev/null || true
    sleep 1; tail -20 /tmp/serve.log
    echo "-- dom0's dmesg:"; dmesg | tail -15
    xl list; exit 1
}
modprobe nbd nbds_max=2 || fail "no nbd module in dom0's kernel"
# serve IMG [OPTS...]: remus disk serve on /dev/nbd0, until it has a size
serve() {
    $R -v disk serve "$@" --device /dev/nbd0 >> /tmp/serve.log 2>&1 &
    SRV=$!
    for i in $(seq 1 50); do
        if [ "$(cat /sys/block/nbd0/size)" != 0 ]; then return 0; fi
        kill -0 $SRV 2>/dev/null || fail "disk serve ended: $(tail -1 /tmp/serve.log)"
        sleep 0.2
    done
    fail "/dev/nbd0 has no size after 10 s"
}
stop_serve() {
    kill -TERM $SRV
    rc=0; wait $SRV || rc=$?
    [ $rc = 0 ] || fail "disk serve exited $rc on SIGTERM"
    [ "$(cat /sys/block/nbd0/size)" = 0 ] || fail "/dev/nbd0 is still attached after SIGTERM"
}
# records IMG LOG: every "guest: disk N TOKEN" of LOG (a console log:
# CRLF lines) has its record at sector N of IMG ("rec N BOOT TOKEN"); at
# least 8.
records() {
    tr -d '\r' < "$2" > /tmp/records.log
    boot=$(grep -a -m1 "guest: counter" /tmp/records.log | awk '{print $5}')
    n=0
    disk_records /tmp/records.log > /tmp/records.list
    while read -r k tok; do
        got=$(dd if="$1" bs=512 skip="$k" count=1 2>/dev/null | tr -d '\0' | head -1)
        [ "$got" = "rec $k $boot $tok" ] || { echo "sector $k holds '$got', not 'rec $k $boot $tok'"; return 1; }
        n=$((n + 1))
    done < /tmp/records.list
    [ $n -ge 8 ] || { echo "only $n records reported"; return 1; }
    echo "$n records, each in the image"
}
# guest NAME: a PVH guest with lab_disk, its disk /dev/nbd0 (vbd-lab)
guest() {
    sed -e "s/^name = .*/name = \"$1\"/" -e 's/^extra = "\(.*\)"/extra = "\1 lab_disk"/' \
        /payload/guest.cfg > /tmp/$1.cfg
    echo 'disk = [ "vdev=xvda,access=rw,format=raw,script=/payload/vbd-lab,target=/dev/nbd0" ]' >> /tmp/$1.cfg
    create_guest /tmp/$1.cfg $1
}

echo "== 1. dom0's I/O on /dev/nbd0 reaches the image"
truncate -s 64M /tmp/d.img
serve /tmp/d.img
head -c 4194304 /dev/urandom > /tmp/rand
dd if=/tmp/rand of=/dev/nbd0 bs=1M seek=8 oflag=direct conv=fsync 2>/dev/null || fail "dd to /dev/nbd0"
cmp -n 4194304 -i 0:8388608 /tmp/rand /tmp/d.img || fail "the image does not hold what /dev/nbd0 took"
dd if=/dev/nbd0 of=/tmp/back bs=1M skip=8 count=4 iflag=direct 2>/dev/null || fail "dd from /dev/nbd0"
cmp /tmp/rand /tmp/back || fail "/dev/nbd0 reads back other data"
blkdiscard -o 8388608 -l 1048576 /dev/nbd0 || fail "blkdiscard on /dev/nbd0"
cmp -n 1048576 -i 8388608:0 /tmp/d.img /dev/zero || fail "a discarded range is not zeros in the image"
stop_serve
echo "dom0: 4 MiB written and read back through /dev/nbd0, a discard zeroed, detached on SIGTERM"

echo "== 2. negative control: a read-only export refuses dom0's write"
truncate -s 64M /tmp/ro.img
serve /tmp/ro.img --read-only
if dd if=/tmp/rand of=/dev/nbd0 bs=1M count=1 oflag=direct conv=fsync 2>/dev/null; then
    fail "negative control: a write to a read-only export succeeded"
fi
cmp -n 1048576 /tmp/ro.img /dev/zero || fail "a refused write changed the read-only image"
echo "negative control ok: the write to a read-only export failed, its image unchanged"
stop_serve
echo "== 3. a PVH guest's disk on /dev/nbd0"
serve /tmp/d.img
guest labnbd
glog=/var/log/xen/console/guest-labnbd.log
wait_counter $glog 4 60
for i in $(seq 1 120); do
    if [ "$(grep -a -c "guest: disk [0-9]" $glog)" -ge 10 ]; then break; fi
    sleep 0.5
done
records /tmp/d.img $glog || fail "the guest's records are not all in the image"
xl destroy labnbd
stop_serve

echo "== 4. negative control: the guest on a read-only export"
truncate -s 0 /tmp/ro.img; truncate -s 64M /tmp/ro.img
serve /tmp/ro.img --read-only
if guest labro; then
    wait_counter /var/log/xen/console/guest-labro.log 12 60 || true
    xl destroy labro
fi
if records /tmp/ro.img /var/log/xen/console/guest-labro.log; then
    fail "negative control: the guest's records were found on a read-only export"
fi
echo "negative control ok: no record of the guest reaches a read-only export's image"
# and the check itself: step 3's guest log against an image without them
if records /tmp/ro.img $glog; then
    fail "negative control: step 3's records were found in an image that never held them"
fi
echo "negative control ok: step 3's records are not found in another image"
stop_serve
grep -q "nbd0 attached" /tmp/serve.log || fail "the server did not say it attached /dev/nbd0"
echo "xennbd: remus serves the kernel's /dev/nbd0 to dom0 and to a PVH guest's disk"
