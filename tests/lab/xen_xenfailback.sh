#!/usr/bin/env bash
# Handover and failback on Xen: protect -> A, `remus handover`, `remus
# reprotect` A -> B through A's control socket, handover again
# (lab/xen/scenarios/xenfailback.sh).
set -euo pipefail
exec "$ROOT/lab/xen/run-scenario.sh" xenfailback "$BUILD"
