#!/usr/bin/env bash
# lab/xen/guest-died.sh RESULTS-DIR: did a guest die on its own in this
# lab run?  Nested SVM under TCG is not flawless (../shared/xen-lab.md): a
# guest may triple-fault or crash with no fault of ours, and Xen says so
# in its log (xl-dmesg.log, serial.log).  Prints the evidence and exits 0
# if so; exits 1 if not (then a failed scenario is ours to explain).
set -uo pipefail
dir=${1:?usage: guest-died.sh RESULTS-DIR}
ev=$(grep -hE "Triple fault|domain_crash|crashed on cpu#|d[1-9][0-9]*v[0-9]+ (Unexpected|unhandled) (vmexit|exception)" \
        "$dir/xl-dmesg.log" "$dir/serial.log" 2>/dev/null | head -3)
[ -n "$ev" ] || exit 1
echo "$ev"
