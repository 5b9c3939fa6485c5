#!/bin/sh
# Smoke: Xen runs HVM/PVH guests (hap), a PVH guest boots and counts.
set -e
xl info | grep -E "^(xen_version|virt_caps|total_memory|free_memory)"
xl info | grep -q "virt_caps.*hvm" || { echo "no HVM support: no PVH guests"; exit 1; }
xl create /payload/guest.cfg
for i in $(seq 1 60); do
    grep -q "guest: counter 3" /var/log/xen/console/guest-labguest.log 2>/dev/null && break
    sleep 1
done
xl list
tail -3 /var/log/xen/console/guest-labguest.log
grep -q "guest: counter 3" /var/log/xen/console/guest-labguest.log
echo "smoke: the PVH guest runs and counts"
