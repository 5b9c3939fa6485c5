#!/bin/sh
# Not a test: the lab guest booted again and again (created, counted to
# 4, destroyed), deaths counted: how often a PVH guest dies at boot under
# the lab's nested SVM (lab/xen/README.md, "Spontaneous deaths").
# XEN_LAB_ENV: BOOTCHURN_BOOTS (default 10); BOOTCHURN_TSC, the guest's
# tsc_mode (default guest.cfg's, "native"; "default" to compare).  Each
# boot prints the seconds to the fourth count, the first one Xen's TSC
# modes ('s' debug key).
. /payload/scenario-lib.sh
n=${BOOTCHURN_BOOTS:-10}
log=/var/log/xen/console/guest-labguest.log
sed -e 's/^name = .*/name = "labguest"/' /payload/guest.cfg > /tmp/g.cfg
[ -z "${BOOTCHURN_TSC:-}" ] || set_tsc_mode /tmp/g.cfg "$BOOTCHURN_TSC"
deaths=0
for b in $(seq 1 $n); do
    : > $log
    xl create /tmp/g.cfg > /tmp/create.log 2>&1 || tail -5 /tmp/create.log   # not announced: a death must not stop the count
    t0=$(date +%s)
    if wait_counter $log 4 45 > /dev/null; then
        echo "boot $b: ok in $(( $(date +%s) - t0 )) s"
        [ "$b" != 1 ] || { xl debug-keys s; xl dmesg | tail -2; }
    else
        deaths=$((deaths + 1))
        echo "boot $b: died: $(xl dmesg | grep -E 'Triple|crash' | tail -1) $(xl list labguest | awk 'NR == 2 {print $5}')"
        tail -8 $log; xl dmesg | tail -5
    fi
    xl destroy labguest
done
echo "bootchurn: $n boots, $deaths deaths"
