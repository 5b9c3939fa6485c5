#!/usr/bin/env bash
# A bounded soak (tests/soak/soak.sh; `make soak` runs 1,000 rounds) in a
# real corosync cluster: each fault -- kill -9 of the primary, of the
# secondary, a cut link, the primary's host isolated, a clean stop -- at
# least once, with every acknowledged write checked on whichever side runs
# the VM afterwards, and never both.
exec bash "$ROOT/tests/soak/soak.sh" "${SOAK_ROUNDS:-10}" "${SOAK_SEED:-42}"
