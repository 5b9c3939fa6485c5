#!/usr/bin/env bash
# The Pacemaker agent manages a Xen pair: start, cold-start promote, move
# by handover, protect back, a failed node stopped, no domain left
# (lab/xen/scenarios/xenocf.sh).
set -euo pipefail
# Every agent action runs xl and remus under TCG: this scenario needs more
# than the default 900 s (the runner gives a lab script 1200).
export XEN_LAB_TIMEOUT=${XEN_LAB_TIMEOUT:-1150}
exec "$ROOT/lab/xen/run-scenario.sh" xenocf "$BUILD"
