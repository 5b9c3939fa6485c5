#!/usr/bin/env bash
# A bounded soak (tests/soak/soak.sh; `make soak` runs 1,000 rounds) in a
# real corosync cluster, keyed: each fault -- kill -9 of the primary, of
# the secondary, a cut link, the primary's host isolated, a clean stop, a
# kill of either side during a disk's initial sync; disk rounds with
# DISKCHECK too -- with every acknowledged write checked on whichever side
# runs the VM
# afterwards, never both, each process ending as its fault implies.  Fails
# if the soak does, and unless every fault soak.sh knows ran at least once
# (a vacuous round runs none; SOAK_FAULTS restricting the list is caught).
set -u
faults=$(bash "$ROOT/tests/soak/soak.sh" --faults) || exit 1
out=$(mktemp /tmp/remus-soak-short.XXXXXX)
trap 'rm -f "$out"' EXIT
bash "$ROOT/tests/soak/soak.sh" "${SOAK_ROUNDS:-10}" "${SOAK_SEED:-42}" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
if [ "$rc" = 77 ]; then exit 77; fi
[ "$rc" = 0 ] || { echo "soak_short: the soak failed (exit $rc)"; exit 1; }
for f in $faults; do
    grep -Eq "^  fault $f: ran [1-9][0-9]*\$" "$out" ||
        { echo "soak_short: fault $f never ran"; rc=1; }
done
exit "$rc"
