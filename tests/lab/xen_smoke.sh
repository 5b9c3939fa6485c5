#!/usr/bin/env bash
# The Xen lab boots: Xen 4.17 + Debian dom0 in QEMU (TCG), a PVH guest is
# created and counts on its console (lab/xen/scenarios/smoke.sh).
set -euo pipefail
exec "$ROOT/lab/xen/run-scenario.sh" smoke "$BUILD"
