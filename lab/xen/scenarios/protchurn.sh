#!/bin/sh
# Not a test: protection started and ended again and again on one PVH
# guest, to count the guest's deaths when protection starts (log-dirty
# enabled, first suspend and resume) under the lab's nested SVM, and to
# compare guest settings (lab/xen/README.md, "Spontaneous deaths").
# XEN_LAB_ENV: PROTCHURN_ROUNDS (default 12), PROTCHURN_TSC (an xl
# tsc_mode for the guest, default: xl's own; not tried yet).  No shadow
# paging to compare with: Debian's Xen is built without it.
. /payload/scenario-lib.sh
R=/payload/remus
n=${PROTCHURN_ROUNDS:-12}
log=/var/log/xen/console/guest-labguest.log
sed -e 's/^name = .*/name = "labguest"/' /payload/guest.cfg > /tmp/g.cfg
[ -z "${PROTCHURN_TSC:-}" ] || echo "tsc_mode = \"$PROTCHURN_TSC\"" >> /tmp/g.cfg
echo "guest config:"; cat /tmp/g.cfg
ip link set lo up
$R keygen /tmp/lab.key
deaths=0 boots=0 rounds_ok=0
boot() {
    xl destroy labguest 2>/dev/null; : > $log
    boots=$((boots + 1))
    xl create /tmp/g.cfg || return 1   # not announced: a death must not stop the count
    wait_counter $log 4 90 > /dev/null || return 1
}
alive() {  # the guest runs and counts on
    st=$(xl list labguest 2>/dev/null | awk 'NR == 2 {print $5}')
    case "$st" in *s*|*c*|"") return 1 ;; esac
    c0=$(counter $log); sleep 3; c1=$(counter $log)
    [ "${c1:-0}" -gt "${c0:-0}" ]
}
boot || { deaths=$((deaths + 1)); echo "death at boot $boots"; boot; }
xl debug-keys s; xl dmesg | grep -i -A4 'TSC' | tail -8
for r in $(seq 1 $n); do
    dom=$(xl domid labguest)
    $R receive --xen --key-file /tmp/lab.key --config /tmp/g.cfg --listen 127.0.0.1:7070 \
        --progress 0 > /tmp/recv.log 2>&1 &
    RECV=$!
    for i in $(seq 1 120); do if ss -Hltn 'sport = :7070' | grep -q .; then break; fi; sleep 1; done
    echo "round $r: receive listening after $i s"
    $R protect --xen --key-file /tmp/lab.key -i 200 --progress 0 --stats-file /tmp/stats \
        labguest 127.0.0.1:7070 > /tmp/prot.log 2>&1 &
    PROT=$!
    : > /tmp/stats
    for i in $(seq 1 60); do if [ "$(wc -l < /tmp/stats)" -ge 3 ]; then break; fi
        kill -0 $PROT 2>/dev/null || break; sleep 1; done
    kill -INT $PROT 2>/dev/null
    for i in $(seq 1 30); do kill -0 $PROT 2>/dev/null || break; sleep 1; done
    kill -9 $PROT 2>/dev/null; wait $PROT; prc=$?
    for i in $(seq 1 20); do kill -0 $RECV 2>/dev/null || break; sleep 1; done
    kill -TERM $RECV 2>/dev/null; sleep 2; kill -9 $RECV 2>/dev/null; wait $RECV; rrc=$?
    if alive; then
        [ "$(wc -l < /tmp/stats)" -ge 3 ] || { echo "round $r: fewer than 3 checkpoints"; tail -3 /tmp/prot.log; tail -3 /tmp/recv.log; }
        rounds_ok=$((rounds_ok + 1)); echo "round $r: ok (protect $prc, receive $rrc, $(wc -l < /tmp/stats) checkpoints)"
    else
        deaths=$((deaths + 1))
        echo "round $r: the guest died (protect $prc, receive $rrc): $(xl dmesg | grep -E 'Triple|crash|d[0-9]+v' | tail -2)"
        tail -3 /tmp/prot.log
        xl list
        boot || { deaths=$((deaths + 1)); echo "death at boot $boots"; boot; }
    fi
    xl destroy labguest--replica 2>/dev/null
done
xl debug-keys s; xl dmesg | grep -i 'vtsc\|dom[0-9]*: mode' | tail -6
echo "protchurn: $n rounds, $rounds_ok ok, $deaths deaths, $boots boots (tsc_mode ${PROTCHURN_TSC:-default})"
