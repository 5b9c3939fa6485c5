#!/bin/sh
# Smoke: Xen runs HVM/PVH guests (hap), a PVH guest boots and counts.
set -e
. /payload/scenario-lib.sh
xl info | grep -E "^(xen_version|virt_caps|total_memory|free_memory)"
xl info | grep -q "virt_caps.*hvm" || { echo "no HVM support: no PVH guests"; exit 1; }
create_guest /payload/guest.cfg labguest
wait_counter /var/log/xen/console/guest-labguest.log 3 60
xl list
tail -3 /var/log/xen/console/guest-labguest.log
echo "smoke: the PVH guest runs and counts"
