#!/usr/bin/env bash
# protect --xen DOMAIN HOST starts its own receiver through -s CMD; it
# outlives the primary and takes over (lab/xen/scenarios/xenspawn.sh).
set -euo pipefail
exec "$ROOT/lab/xen/run-scenario.sh" xenspawn "$BUILD"
