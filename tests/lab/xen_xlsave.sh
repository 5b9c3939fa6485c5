#!/usr/bin/env bash
# Xen's own `xl save` file of a PVH guest is accepted by Xen's
# verify-stream-v2 and read by `remus stream-info --format xl` (a corrupted
# copy refused); `xl restore` brings the guest back counting
# (lab/xen/scenarios/xlsave.sh).
set -euo pipefail
exec "$ROOT/lab/xen/run-scenario.sh" xlsave "$BUILD"
