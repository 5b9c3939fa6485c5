#!/bin/sh
# A 64-bit PV guest (the lab's kernel and initramfs, type "pv"):
#  - `remus save --xen` saves it non-live with its page tables in canonical
#    form (mfns -> pfns) and the PV records; Xen's verify-stream-v2
#    accepts the stream and `remus stream-info` reads it;
#  - Xen's own restore takes it: the stream wrapped as an xl save file
#    (xl header + libxl stream around it) and `xl restore`d, the guest
#    counts on -- Xen rebuilt every page table from our canonical form;
#  - `remus restore --xen` of that stream (into a domain `xl create -p`
#    built from the PV config) continues the guest;
#  - `remus restore --xen` of the libxc stream inside Xen's own `xl save`
#    of the PV guest continues it too;
#  - --live is refused for a PV guest, naming why;
#  - a save during which the guest's p2m changes (its generation count in
#    the shared info moves) aborts, naming it, and the guest runs on.
set -e
export PYTHONPATH=/usr/lib/xen-4.17/lib/python
. /payload/scenario-lib.sh
R=/payload/remus
log=/var/log/xen/console/guest-labpv.log
start_pv_guest
dom=$(xl domid labpv)
xl list
if ours $dom $R save --xen --live labpv /tmp/live.rms 2> /tmp/live.err; then echo "--live accepted for a PV guest"; exit 1; fi
echo "live: $(head -1 /tmp/live.err)"
# The guest's p2m changes under the save (its generation count moves, as
# when it balloons): the save aborts naming the change and the guest runs
# on from where it was.
before=$(mark $log)
/payload/xen_p2m_gen $dom 120000 > /tmp/gen.out &
gen=$!
sleep 1
if ours $dom $R save --xen labpv /tmp/moved.rms 2> /tmp/moved.err; then kill $gen; echo "a save succeeded while the guest's p2m changed"; exit 1; fi
kill $gen; wait $gen || true
grep -q "changed its p2m" /tmp/moved.err || { tail -5 /tmp/moved.err; echo "the failed save does not name the p2m change"; exit 1; }
echo "p2m moved: $(grep -o "domain [0-9]* changed its p2m[^:]*" /tmp/moved.err | tail -1)"
[ ! -e /tmp/moved.rms ] || { echo "the aborted save left /tmp/moved.rms"; exit 1; }
counts_on $log "$before" "save aborted by a p2m change" || { echo "the guest does not count on after the aborted save"; exit 1; }
t0=$(date +%s)
ours $dom $R -v save --xen labpv /tmp/pv.rms > /tmp/save.log 2>&1 || { tail -20 /tmp/save.log; echo "remus save --xen of a PV guest failed"; exit 1; }
tail -4 /tmp/save.log
echo "remus save --xen (PV) took $(( $(date +%s) - t0 )) s, $(stat -c %s /tmp/pv.rms) bytes"
saved=$(mark $log)   # the state in /tmp/pv.rms
if xl list labpv >/dev/null 2>&1; then echo "the saved domain still exists"; exit 1; fi
verify-stream-v2 -f libxc -i /tmp/pv.rms > /tmp/verify.log 2>&1 || { tail -8 /tmp/verify.log; echo "verify-stream-v2 refused remus's PV stream"; exit 1; }
tail -2 /tmp/verify.log
$R stream-info /tmp/pv.rms > /tmp/info.log 2>&1 || { tail -20 /tmp/info.log; exit 1; }
grep -q "x86 PV" /tmp/info.log || { head /tmp/info.log; echo "not an x86 PV stream"; exit 1; }
head -6 /tmp/info.log; tail -3 /tmp/info.log
python3 /payload/pvtypes.py /tmp/pv.rms
# Wrap as an xl save file and let Xen restore it.
python3 /payload/xlfile.py wrap /tmp/pv.rms /tmp/pv.xlsave
$R stream-info --format xl --quiet /tmp/pv.xlsave || { echo "our own xl wrapper is unreadable"; exit 1; }
if ! ours new xl -vvv restore /tmp/pv.cfg /tmp/pv.xlsave > /tmp/xlrestore.log 2>&1; then
    grep -E "xc: " /tmp/xlrestore.log | tail -25
    # Diagnosis: remus's save (the guest kept running) and Xen's own save of
    # the same guest right after it, compared.
    xl destroy labpv 2>/dev/null || true
    : > $log
    xl create /tmp/pv.cfg
    wait_counter $log 4 || true
    $R save --xen -c labpv /tmp/pv2.rms 2>&1 | tail -1
    if xl save labpv /tmp/pv.xl >/dev/null 2>&1; then python3 /payload/pvtypes.py /tmp/pv2.rms /tmp/pv.xl:xl; fi
    if xl -vvv restore /tmp/pv.xl > /tmp/xlrestore2.log 2>&1; then
        echo "Xen's own PV save restores"
    else
        echo "Xen's own PV save does not restore either:"; grep -E "xc: " /tmp/xlrestore2.log | tail -6
    fi
    echo "xl restore of remus's PV stream failed"; exit 1
fi
xl list
counts_on $log "$saved" "save, xl restore" || { echo "the PV guest does not count on after xl restore"; xl dmesg | tail -20; exit 1; }
# remus restore of remus's own PV stream; first two bad copies: a page
# table entry naming a pfn beyond the guest, and a page type no page may
# have.  Each is refused by name and leaves no domain.
xl destroy labpv
python3 - /tmp/pv.rms <<'EOPY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
off, done = 40, set()
while off + 8 <= len(d) and len(done) < 2:
    rtype, rlen = struct.unpack_from('<II', d, off)
    body = off + 8
    if rtype == 1:
        count = struct.unpack_from('<I', d, body)[0]
        p = body + 8 + 8 * count
        for k in range(count):
            e = struct.unpack_from('<Q', d, body + 8 + 8 * k)[0]
            t = e >> 60
            if t in (0, 1, 2, 3, 4, 9, 10, 11, 12):
                if t == 12 and 'pte' not in done:
                    bad = bytearray(d)
                    for i in range(512):
                        pte = struct.unpack_from('<Q', bad, p + 8 * i)[0]
                        if pte & 1:
                            struct.pack_into('<Q', bad, p + 8 * i, (pte & ~0x000ffffffffff000) | (0xfffff << 12))
                            break
                    open('/tmp/badpte.rms', 'wb').write(bad)
                    done.add('pte')
                if t == 9 and 'type' not in done:
                    bad = bytearray(d)
                    struct.pack_into('<Q', bad, body + 8 + 8 * k, (e & ((1 << 60) - 1)) | (6 << 60))
                    open('/tmp/badtype.rms', 'wb').write(bad)
                    done.add('type')
                p += 4096
    off = body + ((rlen + 7) & ~7)
EOPY
for f in badpte badtype; do
    if ours new $R restore --xen --config /tmp/pv.cfg /tmp/$f.rms 2> /tmp/$f.log; then echo "the $f stream was accepted"; exit 1; fi
    echo "$f: $(grep error /tmp/$f.log | tail -1)"
    if xl list labpv >/dev/null 2>&1; then echo "a refused restore left a domain"; exit 1; fi
done
grep -q "beyond the guest" /tmp/badpte.log || { echo "the bad PTE refusal does not say why"; exit 1; }
# the same stream again: the guest goes on from the saved state once more
ours new $R -v restore --xen --config /tmp/pv.cfg /tmp/pv.rms > /tmp/restore.log 2>&1 || { tail -20 /tmp/restore.log; xl dmesg | tail -10; echo "remus restore --xen of a PV stream failed"; exit 1; }
tail -4 /tmp/restore.log
counts_on $log "$saved" "remus restore" || { xl dmesg | tail -20; exit 1; }
# remus restore of the libxc stream inside Xen's own xl save.
ours all xl save labpv /tmp/own.xlsave > /dev/null
before=$(mark $log)
python3 /payload/xlfile.py extract /tmp/own.xlsave /tmp/own.libxc
$R stream-info --quiet /tmp/own.libxc 2>&1 | tail -1
ours new $R -v restore --xen --config /tmp/pv.cfg /tmp/own.libxc > /tmp/restore2.log 2>&1 || { tail -20 /tmp/restore2.log; echo "remus restore --xen of xl's own PV stream failed"; exit 1; }
tail -2 /tmp/restore2.log
counts_on $log "$before" "xl save, remus restore of it"
echo "xenpvsave: remus save --xen of a PV guest passes verify-stream-v2; Xen's own restore and remus restore continue it; remus restore takes xl save's PV stream too"
