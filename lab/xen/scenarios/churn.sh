#!/bin/sh
# Not a test of remus (no remus operation): a measure of the lab itself,
# run by hand (lab/xen/run-scenario.sh churn) to compare QEMU's options
# (XEN_LAB_TCG, XEN_LAB_CPU, XEN_LAB_SMP) for spontaneous guest deaths.
# The PVH guest is live-migrated to this host CHURN_ROUNDS times (default
# 8) with Xen's own `xl migrate`: each is a run of log-dirty passes like a
# checkpoint's, where deaths were seen.  After each it must count on in the
# same boot.  Ends with "churn: R of N rounds, D deaths" (Xen's log and
# crashed domains).
# With CHURN_PIN=1 dom0's vCPUs run on CPU 0 only and the guest's on CPU 1
# only (re-pinned after each migration): no switch between dom0 and the
# guest on one CPU, no move of the guest's vCPU between CPUs.
# (XEN_LAB_ENV="CHURN_PIN=1 CHURN_ROUNDS=N" on the host.)
set -e
. /payload/scenario-lib.sh
n=${CHURN_ROUNDS:-8}
pin() { [ "${CHURN_PIN:-0}" = 1 ] || return 0; xl vcpu-pin 0 all 0; xl vcpu-pin labguest all 1; }
xl create -p /payload/guest.cfg
pin
lab_guest labguest
xl unpause labguest
wait_counter /var/log/xen/console/guest-labguest.log 4 60
ok=0
for r in $(seq 1 "$n"); do
    log=$(ls -t /var/log/xen/console/guest-labguest*.log | head -1)
    before=$(mark "$log")
    t0=$(date +%s)
    if ! xl migrate -s "" labguest "xl migrate-receive" > /tmp/mig.log 2>&1; then
        tail -5 /tmp/mig.log; echo "round $r: xl migrate failed"; break
    fi
    pin
    log=$(ls -t /var/log/xen/console/guest-labguest*.log | head -1)
    counts_on "$log" "$before" "migration $r ($(( $(date +%s) - t0 )) s)" || break
    ok=$r
done
xl list
xl vcpu-list
# Deaths: Xen's messages, and domains crashed by their own kernel's panic.
xd=$(xl dmesg | grep -cE "Triple fault|crashed on cpu#|reported crashed|Unexpected vmexit|Unhandled" || true)
xl dmesg | grep -E "Triple fault|crashed on cpu#|reported crashed|Unexpected vmexit|Unhandled" || true
gd=$(xl list | awk 'NR > 1 && $5 ~ /c/' | wc -l)
grep -ahE "Kernel panic|BUG:" /var/log/xen/console/guest-labguest*.log || true
deaths=$((xd + gd))
echo "churn: $ok of $n rounds, $deaths deaths ($xd in Xen's log, $gd crashed domains)"
[ "$ok" = "$n" ] || exit 1
[ "$deaths" = 0 ] || exit 1
