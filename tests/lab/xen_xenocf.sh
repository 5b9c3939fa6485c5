#!/usr/bin/env bash
# The Pacemaker agent manages a Xen pair: start, cold-start promote, move
# by handover, protect back, a failed node stopped, no domain left
# (lab/xen/scenarios/xenocf.sh).
set -euo pipefail
exec "$ROOT/lab/xen/run-scenario.sh" xenocf "$BUILD"
