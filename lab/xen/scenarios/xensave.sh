#!/bin/sh
# remus's own Xen save and restore of a PVH guest: `remus save --xen`
# writes a libxc stream that Xen's verify-stream-v2 accepts, `remus
# restore --xen` brings the guest back counting; a corrupted stream is
# refused by its byte offset and leaves no domain behind.
set -e
export PYTHONPATH=/usr/lib/xen-4.17/lib/python
. /payload/scenario-lib.sh
R=/payload/remus
log=/var/log/xen/console/guest-labguest.log
create_guest /payload/guest.cfg labguest
dom=$(xl domid labguest)
wait_counter $log 4 60
t0=$(date +%s)
ours $dom $R -v save --xen labguest /tmp/guest.rms > /tmp/save.log 2>&1 || { tail -20 /tmp/save.log; echo "remus save --xen failed"; exit 1; }
tail -5 /tmp/save.log
echo "remus save --xen took $(( $(date +%s) - t0 )) s, $(stat -c %s /tmp/guest.rms) bytes"
if xl list labguest >/dev/null 2>&1; then echo "the saved domain still exists"; exit 1; fi
before=$(mark $log)
verify-stream-v2 -f libxc -i /tmp/guest.rms > /tmp/verify.log 2>&1 || { tail -8 /tmp/verify.log; echo "verify-stream-v2 refused remus's stream"; exit 1; }
tail -2 /tmp/verify.log
$R stream-info /tmp/guest.rms > /tmp/info.log 2>&1 || { tail -20 /tmp/info.log; exit 1; }
head -8 /tmp/info.log; tail -3 /tmp/info.log
# A corrupted copy (the first PAGE_DATA record's type) and a truncated
# copy are refused, each naming the byte, and leave no domain behind.
off=$(awk '$2 ~ /^PAGE_DATA/ {print $1; exit}' /tmp/info.log)
cp /tmp/guest.rms /tmp/bad.rms
printf '\377\377\377\177' | dd of=/tmp/bad.rms bs=1 seek=$off conv=notrunc 2>/dev/null
head -c 70000000 /tmp/guest.rms > /tmp/short.rms
for f in bad short; do
    if ours new $R restore --xen --config /payload/guest.cfg /tmp/$f.rms 2> /tmp/$f.log; then echo "the $f stream was accepted"; exit 1; fi
    echo "$f stream: $(tail -1 /tmp/$f.log)"
    if xl list labguest >/dev/null 2>&1; then echo "a refused restore left a domain"; xl list; exit 1; fi
done
grep -q "byte $off\|offset $off\|at $off" /tmp/bad.log || { echo "the refusal does not name byte $off"; exit 1; }
t0=$(date +%s)
ours new $R -v restore --xen --config /payload/guest.cfg /tmp/guest.rms > /tmp/restore.log 2>&1 || { tail -20 /tmp/restore.log; echo "remus restore --xen failed"; exit 1; }
tail -5 /tmp/restore.log
echo "remus restore --xen took $(( $(date +%s) - t0 )) s"
xl list
counts_on $log "$before" "save and restore" || { xl dmesg | tail -20; exit 1; }
echo "xensave: remus save --xen passes verify-stream-v2 -f libxc; remus restore --xen continues the guest"
