#!/bin/sh
# Not a test: the lab guest booted again and again (created, counted to
# 4, destroyed), deaths counted: how often a PVH guest dies at boot under
# the lab's nested SVM (lab/xen/README.md, "Spontaneous deaths").
# XEN_LAB_ENV: BOOTCHURN_BOOTS (default 10).
. /payload/scenario-lib.sh
n=${BOOTCHURN_BOOTS:-10}
log=/var/log/xen/console/guest-labguest.log
sed -e 's/^name = .*/name = "labguest"/' /payload/guest.cfg > /tmp/g.cfg
deaths=0
for b in $(seq 1 $n); do
    : > $log
    xl create /tmp/g.cfg > /tmp/create.log 2>&1 || tail -5 /tmp/create.log   # not announced: a death must not stop the count
    if wait_counter $log 4 45 > /dev/null; then
        echo "boot $b: ok"
    else
        deaths=$((deaths + 1))
        echo "boot $b: died: $(xl dmesg | grep -E 'Triple|crash' | tail -1) $(xl list labguest | awk 'NR == 2 {print $5}')"
        tail -8 $log; xl dmesg | tail -5
    fi
    xl destroy labguest
done
echo "bootchurn: $n boots, $deaths deaths"
