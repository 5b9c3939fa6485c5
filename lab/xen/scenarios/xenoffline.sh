#!/bin/sh
# Page offlining on Xen: `remus offline-page --xen` moves a PVH guest off
# one of its machine frames by a live migration to this host (save and
# restore engines back to back); afterwards Xen reports the frame offline
# and the guest, renamed back, counts on.  A frame of another domain
# (dom0's frame with the same m2p entry) is refused and left in use.
set -e
R=/payload/remus
log=/var/log/xen/console/guest-labguest.log
counter() { grep -o "counter [0-9]*" "$1" 2>/dev/null | tail -1 | awk '{print $2}'; }
xl create /payload/guest.cfg
dom=$(xl domid labguest)
for i in $(seq 1 60); do grep -q "guest: counter 4" $log 2>/dev/null && break; sleep 1; done
grep -q "guest: counter 4" $log || { echo "the guest did not start counting"; exit 1; }
# Machine frames whose m2p entry is guest frame 0x6000 (inside the guest's
# 128 MiB): one is the guest's, the others dom0's or stale.
/payload/xen_m2p_find 0x6000 > /tmp/cands || { echo "no m2p candidates"; exit 1; }
cat /tmp/cands
mfn=""; refused=0
for m in $(awk '{print $1}' /tmp/cands); do
    if $R offline-page --xen --config /payload/guest.cfg labguest $m > /tmp/off.log 2>&1; then
        mfn=$m; break
    fi
    cat /tmp/off.log
    grep -q "not to domain $dom" /tmp/off.log && refused=$((refused + 1))
done
cat /tmp/off.log
[ -n "$mfn" ] || { echo "no candidate frame was the guest's"; exit 1; }
grep -q "machine frame $mfn is offline$" /tmp/off.log || { echo "Xen does not report $mfn offline"; exit 1; }
new=$(xl domid labguest) || { xl list; echo "no labguest after the move"; exit 1; }
[ "$new" != "$dom" ] || { echo "still the old domain"; exit 1; }
before=$(counter $log)
nlog=/var/log/xen/console/guest-labguest--migrating.log
for i in $(seq 1 40); do last=$(counter $nlog); [ "${last:-0}" -gt "$((before + 3))" ] && break; sleep 1; done
echo "counter before the move: $before; after: $last (refused $refused frames of other domains)"
[ "${last:-0}" -gt "$((before + 3))" ] || { tail $nlog; echo "the moved guest does not count on"; exit 1; }
xl list
# The other candidates are not the guest's: refused, and left online.
$R offline-page --xen --status $mfn
for m in $(awk '{print $1}' /tmp/cands); do
    [ "$m" = "$mfn" ] && continue
    if $R offline-page --xen --config /payload/guest.cfg labguest $m > /tmp/ref.log 2>&1; then
        cat /tmp/ref.log; echo "frame $m of another domain was taken"; exit 1; fi
    cat /tmp/ref.log
    grep -q "not to domain $new" /tmp/ref.log || { echo "no clear refusal for $m"; exit 1; }
    $R offline-page --xen --status $m | tee /tmp/st.log
    grep -q ": online" /tmp/st.log || { echo "frame $m was left marked"; exit 1; }
    refused=$((refused + 1))
done
[ $refused -ge 1 ] || echo "note: no frame of another domain among the candidates"
echo "xenoffline: the guest moved off machine frame $mfn by a live migration, and Xen offlined it"
