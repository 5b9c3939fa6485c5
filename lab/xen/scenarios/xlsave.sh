#!/bin/sh
# Xen's own toolstack and remus's streams of a PVH guest, both ways:
#  - Xen's `xl save`: verify-stream-v2 accepts the file, `remus
#    stream-info --format xl` reads the libxl wrapper and the libxc stream
#    inside it, and `xl restore` brings the guest back counting;
#  - `remus restore --xen` of the libxc stream inside that xl save file
#    continues the guest;
#  - `remus save --xen` of the guest, wrapped as an xl save file
#    (lab/xen/xlfile.py), and `xl restore`d: Xen's own restore continues
#    the guest from remus's stream.
set -e
export PYTHONPATH=/usr/lib/xen-4.17/lib/python
. /payload/scenario-lib.sh
log=/var/log/xen/console/guest-labguest.log
create_guest /payload/guest.cfg labguest
dom=$(xl domid labguest)
wait_counter $log 4 60
t0=$(date +%s)
ours $dom xl save labguest /tmp/guest.save
echo "xl save took $(( $(date +%s) - t0 )) s, $(stat -c %s /tmp/guest.save) bytes"
before=$(mark $log)
verify-stream-v2 -f xl -i /tmp/guest.save > /tmp/verify.log 2>&1 || { tail -5 /tmp/verify.log; echo "verify-stream-v2 refused xl's own file"; exit 1; }
tail -2 /tmp/verify.log
/payload/remus stream-info --format xl /tmp/guest.save > /tmp/info.log 2>&1 || { tail -20 /tmp/info.log; echo "remus stream-info refused xl's file"; exit 1; }
head -6 /tmp/info.log; tail -3 /tmp/info.log
grep -q "Domain header: x86 HVM" /tmp/info.log || { echo "not read as an HVM-type stream"; exit 1; }
# A corrupted copy is refused, by byte offset
cp /tmp/guest.save /tmp/bad.save
printf '\377\377\377\377' | dd of=/tmp/bad.save bs=1 seek=950 conv=notrunc 2>/dev/null
if /payload/remus stream-info --format xl --quiet /tmp/bad.save 2> /tmp/bad.log; then echo "a corrupted file was accepted"; exit 1; fi
cat /tmp/bad.log
ours new xl restore /tmp/guest.save
xl list
counts_on $log "$before" "xl save and xl restore"
# remus restore of the libxc stream inside Xen's own xl save of the guest
ours all xl save labguest /tmp/own.xlsave > /dev/null
before=$(mark $log)
python3 /payload/xlfile.py extract /tmp/own.xlsave /tmp/own.libxc
/payload/remus stream-info --quiet /tmp/own.libxc 2>&1 | tail -1
ours new /payload/remus -v restore --xen --config /payload/guest.cfg /tmp/own.libxc > /tmp/restore.log 2>&1 || { tail -20 /tmp/restore.log; echo "remus restore --xen of xl's own PVH stream failed"; exit 1; }
tail -2 /tmp/restore.log
counts_on $log "$before" "xl save, remus restore of it" || exit 1
# Xen's own restore of remus's stream
dom=$(xl domid labguest)
ours $dom /payload/remus -v save --xen labguest /tmp/pvh.rms > /tmp/save.log 2>&1 || { tail -20 /tmp/save.log; echo "remus save --xen failed"; exit 1; }
tail -2 /tmp/save.log
saved=$(mark $log)
python3 /payload/xlfile.py wrap /tmp/pvh.rms /tmp/pvh.xlsave
/payload/remus stream-info --format xl --quiet /tmp/pvh.xlsave || { echo "our own xl wrapper is unreadable"; exit 1; }
if ! ours new xl -vvv restore /payload/guest.cfg /tmp/pvh.xlsave > /tmp/xlrestore.log 2>&1; then
    grep -E "xc: |libxl" /tmp/xlrestore.log | tail -25
    echo "xl restore of remus's PVH stream failed"; exit 1
fi
xl list
counts_on $log "$saved" "remus save, xl restore of it" || exit 1
echo "xlsave: verify-stream-v2 and remus stream-info accept xl's file; the guest counts on after xl restore; remus restore takes xl's PVH stream and xl restore takes remus's"
