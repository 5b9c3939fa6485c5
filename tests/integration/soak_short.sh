#!/usr/bin/env bash
# A bounded soak (tests/soak/soak.sh; `make soak` runs 1,000 rounds): each
# fault -- kill -9 of the primary, of the secondary, a cut replication
# link, a clean stop -- at least once, with every acknowledged write
# checked on whichever side runs the VM afterwards.
exec bash "$ROOT/tests/soak/soak.sh" "${SOAK_ROUNDS:-8}" "${SOAK_SEED:-42}"
