#!/bin/sh
# Page offlining of a 64-bit PV guest in place: `remus offline-page --xen
# DOMAIN MFN` (no --config) suspends the guest, copies the frame, clears
# every page-table entry mapping it, exchanges it with Xen, writes the copy
# into the new frame, fixes the p2m, re-points the entries and resumes;
# then it marks the frame, free by then, offline (marking a frame a PV
# guest still owns hung Xen 4.17 here: see cli/cmd_xen.c).
#  - a data page whose contents are stable moves: Xen reports the old frame
#    offline, the guest's p2m names a new frame, the contents are the same,
#    the guest counts on; so does a frame of the guest's p2m (the frame
#    list that names it is rewritten);
#  - an L1 and an L2 page table of the guest move (entries re-pointed at
#    the new frame, which Xen validates as a table), and a pinned L4 (unpin,
#    move, pin again; a vCPU's cr3 is refused by name);
#  - the xenstore ring (granted to dom0) is refused, naming the grant;
#  - undo: while a dom0 process maps a frame, Xen will not take it: the
#    cleared entries are put back, the guest counts on with the frame
#    unchanged; once the mapping is gone the move succeeds;
#  - finally `remus save --xen` (which checks every page-table entry of the
#    guest against its p2m and Xen's m2p) saves it, verify-stream-v2 accepts
#    the stream and `remus restore --xen` continues the guest.
set -e
. /payload/scenario-lib.sh
R=/payload/remus
F=/payload/xen_pv_frame
log=/var/log/xen/console/guest-labpv.log
start_pv_guest
dom=$(xl domid labpv)

# offline_ok MFN WHAT: the move succeeds, Xen says the frame is offline.
offline_ok() {
    if ! ours $dom $R offline-page --xen labpv "$1" > /tmp/off.log 2>&1; then
        cat /tmp/off.log; echo "offline-page of $2 ($1) failed"; return 1
    fi
    cat /tmp/off.log
    grep -q "machine frame $1 is offline\$" /tmp/off.log || { echo "$2: $1 not reported offline"; return 1; }
    $R offline-page --xen --status "$1" | grep -q ": offline\$" || { echo "$2: Xen does not report $1 offline"; return 1; }
}
# moved PFN OLDMFN TYPE WHAT: the p2m names a new frame of the same type.
moved() {
    now=$($F labpv pfn "$1") || return 1
    echo "$4 now: $now"
    set -- "$1" "$2" "$3" "$4" $now
    [ "$6" != "$2" ] || { echo "$4: the p2m still names $2"; return 1; }
    [ "$7" = "$3" ] || { echo "$4: type $7 after the move, $3 before"; return 1; }
}

# 1. A data page with stable contents (read twice, 2 s apart).
pfn=""
for p in $(seq 4096 97 30000); do
    out=$($F labpv pfn $p) || continue
    set -- $out
    [ "$3" = data ] || continue
    h1=$($F labpv hash $p); sleep 2; h2=$($F labpv hash $p)
    [ "$h1" = "$h2" ] || continue
    pfn=$1; mfn=$2; break
done
[ -n "$pfn" ] || { echo "no data page with stable contents"; exit 1; }
echo "data page: pfn $pfn mfn $mfn hash $h1"
before=$(mark $log)
offline_ok $mfn "the data page"
moved $pfn $mfn data "the data page"
h3=$($F labpv hash $pfn)
[ "$h3" = "$h1" ] || { echo "the data page's contents changed: $h1 -> $h3"; exit 1; }
counts_on $log $before "the data page's move"

# 1b. A frame of the guest's p2m: the frame list naming it is rewritten
# too (the tools read the p2m through it: the next steps and the save).
out=$($F labpv p2m 1) || { echo "no second p2m frame"; exit 1; }
set -- $out
before=$(mark $log)
offline_ok $2 "a p2m frame"
out=$($F labpv p2m 1); set -- $1 $2 $out
[ "$4" != "$2" ] && [ "$3" = "$1" ] || { echo "the p2m frame list still names $2 (now: $out)"; exit 1; }
echo "p2m frame 1 (pfn $1) moved from $2 to $4"
counts_on $log $before "the p2m frame's move"

# 2. Page tables: an L1, an L2, then a pinned L4 (a vCPU's cr3 is refused).
for t in L1 L2; do
    out=$($F labpv find $t 2) || { echo "no $t table"; exit 1; }
    set -- $out
    before=$(mark $log)
    offline_ok $2 "an $t table"
    grep -q "(an $t page table)" /tmp/off.log || { echo "not reported as an $t table"; exit 1; }
    moved $1 $2 $t "the $t table"
    counts_on $log $before "the $t table's move"
done
l4=""; cr3=0
for n in 0 1 2 3 4 5; do
    out=$($F labpv find L4+ $n) || break
    set -- $out
    before=$(mark $log)
    if ours $dom $R offline-page --xen labpv $2 > /tmp/off.log 2>&1; then
        cat /tmp/off.log
        grep -q "an L4 page table, pinned" /tmp/off.log || { echo "not reported as a pinned L4"; exit 1; }
        moved $1 $2 L4+ "the pinned L4"
        counts_on $log $before "the pinned L4's move"
        l4=$2; break
    fi
    cat /tmp/off.log
    grep -q "page-table root" /tmp/off.log || { echo "pinned L4 $2 refused for no clear reason"; exit 1; }
    cr3=$((cr3 + 1))
done
[ -n "$l4" ] || { echo "no pinned L4 could be moved"; exit 1; }
echo "pinned L4 $l4 moved ($cr3 refused as a vCPU's page-table root)"

# 3. The xenstore ring is granted to dom0: refused, nothing changed.
ring=$(printf '%#x' "$(xenstore-read /local/domain/$dom/store/ring-ref)")
if ours $dom $R offline-page --xen labpv $ring > /tmp/ref.log 2>&1; then
    cat /tmp/ref.log; echo "the granted xenstore ring was moved"; exit 1; fi
cat /tmp/ref.log
grep -q "is granted to domain 0" /tmp/ref.log || { echo "the xenstore ring refusal does not name the grant"; exit 1; }
before=$(mark $log)
counts_on $log $before "the refused ring"

# 4. Undo: a dom0 process maps the frame; Xen will not take it.
out=$($F labpv find L1 5) || { echo "no sixth L1 table"; exit 1; }
set -- $out
upfn=$1; umfn=$2
op_begin "xen_pv_frame hold $umfn" $dom
$F labpv hold $umfn > /tmp/hold.log 2>&1 &
holder=$!
for i in $(seq 1 20); do if grep -q holding /tmp/hold.log; then break; fi; sleep 0.5; done
grep -q holding /tmp/hold.log || { cat /tmp/hold.log; echo "the holder did not map $umfn"; exit 1; }
before=$(mark $log)
if ours $dom $R offline-page --xen labpv $umfn > /tmp/undo.log 2>&1; then
    cat /tmp/undo.log; echo "a frame a dom0 process maps was moved"; exit 1; fi
cat /tmp/undo.log
grep -q "Xen would not exchange" /tmp/undo.log || { echo "the refusal does not say Xen kept the frame"; exit 1; }
grep -q "page tables were put back; the guest runs on as it was (the frame stays online" /tmp/undo.log || { echo "the undo is not reported"; exit 1; }
out=$($F labpv pfn $upfn); set -- $out
[ "$2" = "$umfn" ] || { echo "after the undo the p2m names $2, not $umfn"; exit 1; }
counts_on $log $before "the undone move"
$R offline-page --xen --status $umfn | tee /tmp/st.log
grep -q ": online" /tmp/st.log || { echo "the held frame was left marked"; exit 1; }
kill $holder; wait $holder 2>/dev/null || true
op_end "xen_pv_frame hold $umfn" $dom
before=$(mark $log)
offline_ok $umfn "the frame once released"
moved $upfn $umfn L1 "the released L1"
counts_on $log $before "the move once released"

# 5. The whole guest is consistent: a PV save checks every entry.
ours $dom $R save --xen labpv /tmp/pv.rms > /tmp/save.log 2>&1 || { tail -5 /tmp/save.log; echo "remus save --xen after the moves failed"; exit 1; }
export PYTHONPATH=/usr/lib/xen-4.17/lib/python
verify-stream-v2 -f libxc -i /tmp/pv.rms > /tmp/verify.log 2>&1 || { tail -5 /tmp/verify.log; echo "verify-stream-v2 refused the stream"; exit 1; }
before=$(mark $log)
ours new $R restore --xen --config /tmp/pv.cfg /tmp/pv.rms > /tmp/restore.log 2>&1 || { tail -5 /tmp/restore.log; echo "remus restore --xen failed"; exit 1; }
counts_on $log $before "save and restore after the moves"
echo "xenpvoffline: data, p2m, L1, L2 and pinned L4 frames moved in place and offlined; the granted ring refused; a held frame undone then moved; the guest saved and restored"
