#!/usr/bin/env bash
# netbuf on dom0's kernel, which has sch_plug: the plug holds a VIF's input
# per epoch and lets it out at each release (lab/xen/scenarios/netbuf.sh).
set -euo pipefail
exec "$ROOT/lab/xen/run-scenario.sh" netbuf "$BUILD"
