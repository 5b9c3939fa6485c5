#!/bin/sh
# Xen's own `xl save` of a PVH guest: Xen's verify-stream-v2 accepts the
# file, `remus stream-info --format xl` reads the libxl wrapper and the
# libxc stream inside it, and `xl restore` brings the guest back counting.
set -e
export PYTHONPATH=/usr/lib/xen-4.17/lib/python
. /payload/scenario-lib.sh
log=/var/log/xen/console/guest-labguest.log
xl create /payload/guest.cfg
lab_guest labguest
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
echo "xlsave: verify-stream-v2 and remus stream-info accept xl's file; the guest counts on after xl restore"
