#!/bin/sh
# Not a test: names guest kernel addresses (a dead vCPU's rip from
# dead-DOMID.txt, say) by the kernel's own symbols.  dom0 runs the same
# Debian kernel as the lab guest, and neither a PV dom0 nor a PVH guest
# is relocated at boot (KASLR applies to neither entry), so dom0's
# /proc/kallsyms names the guest's addresses too.
# XEN_LAB_ENV: KSYM_ADDRS="ffffffff8107ee05 ..." (hex, no 0x).
# Prints "ADDR: in SYMBOL (from START)": the last symbol at or below it.
for a in ${KSYM_ADDRS:?set KSYM_ADDRS in XEN_LAB_ENV}; do
    sort /proc/kallsyms | awk -v a="$a" '$1 <= a { s = $3; b = $1 } $1 > a { exit }
        END { print a ": in " s " (from " b ")" }'
done
