#!/bin/sh
# Page offlining on Xen: `remus offline-page --xen` moves a PVH guest off
# one of its machine frames by a live migration to this host (save and
# restore engines back to back); afterwards Xen reports the frame offline
# and the guest, renamed back, counts on.  A frame of another domain
# (dom0's frame with the same m2p entry) is refused and left in use.
# Undo: a first try with a config whose domain is too small for the guest
# fails during the migration; the guest runs on in its old domain and the
# frame stays offline pending.
set -e
. /payload/scenario-lib.sh
R=/payload/remus
log=/var/log/xen/console/guest-labguest.log
create_guest /payload/guest.cfg labguest
dom=$(xl domid labguest)
wait_counter $log 4 60
sed "s/^memory = .*/memory = 100/" /payload/guest.cfg > /tmp/small.cfg
# Machine frames whose m2p entry is guest frame 0x6000 (inside the guest's
# 128 MiB): one is the guest's, the others dom0's or stale.
/payload/xen_m2p_find 0x6000 > /tmp/cands || { echo "no m2p candidates"; exit 1; }
cat /tmp/cands
mfn=""; refused=0
for m in $(awk '{print $1}' /tmp/cands); do
    if ours $dom $R offline-page --xen --config /tmp/small.cfg labguest $m > /tmp/off.log 2>&1; then
        cat /tmp/off.log; echo "the guest moved into a domain too small for it"; exit 1
    fi
    cat /tmp/off.log
    if grep -q "not to domain $dom" /tmp/off.log; then refused=$((refused + 1)); continue; fi
    grep -q "the guest runs on in domain $dom" /tmp/off.log || { echo "a failed move does not say the guest runs on"; exit 1; }
    if grep -q "xl create" /tmp/off.log; then echo "the small domain was not even built: not a failure during the migration"; exit 1; fi
    grep -q "the new domain refused the guest" /tmp/off.log || { echo "the failed move does not name the side that failed"; exit 1; }
    mfn=$m; break
done
[ -n "$mfn" ] || { echo "no candidate frame was the guest's"; exit 1; }
[ "$(xl domid labguest)" = "$dom" ] || { xl list; echo "after the failed move labguest is not domain $dom"; exit 1; }
if xl list | grep -q labguest--; then xl list; echo "the failed move left its new domain"; exit 1; fi
$R offline-page --xen --status $mfn | tee /tmp/st.log
grep -q "offline pending" /tmp/st.log || { echo "after the failed move $mfn is not offline pending"; exit 1; }
counts_on $log "$(mark $log)" "the failed move (undo)"
ours $dom $R offline-page --xen --config /payload/guest.cfg labguest $mfn > /tmp/off.log 2>&1 || { cat /tmp/off.log; echo "the move failed"; exit 1; }
cat /tmp/off.log
grep -q "machine frame $mfn is offline$" /tmp/off.log || { echo "Xen does not report $mfn offline"; exit 1; }
new=$(xl domid labguest) || { xl list; echo "no labguest after the move"; exit 1; }
[ "$new" != "$dom" ] || { echo "still the old domain"; exit 1; }
before=$(mark $log)
nlog=/var/log/xen/console/guest-labguest--migrating.log
counts_on $nlog "$before" "the move (refused $refused frames of other domains)"
xl list
# The other candidates are not the guest's: refused, and left online.
$R offline-page --xen --status $mfn
for m in $(awk '{print $1}' /tmp/cands); do
    if [ "$m" = "$mfn" ]; then continue; fi
    if ours $new $R offline-page --xen --config /payload/guest.cfg labguest $m > /tmp/ref.log 2>&1; then
        cat /tmp/ref.log; echo "frame $m of another domain was taken"; exit 1; fi
    cat /tmp/ref.log
    grep -q "not to domain $new" /tmp/ref.log || { echo "no clear refusal for $m"; exit 1; }
    # dom0 is a PV domain: its frames are refused before they are marked
    # (marking one can hang Xen 4.17: it froze dom0 here once).
    if grep -q "belongs to dom0" /tmp/ref.log; then
        grep -q "(not marked)" /tmp/ref.log || { echo "dom0's frame $m was marked"; exit 1; }
    fi
    $R offline-page --xen --status $m | tee /tmp/st.log
    grep -q ": online" /tmp/st.log || { echo "frame $m was left marked"; exit 1; }
    refused=$((refused + 1))
done
[ $refused -ge 1 ] || echo "note: no frame of another domain among the candidates"
echo "xenoffline: the guest moved off machine frame $mfn by a live migration, and Xen offlined it"
