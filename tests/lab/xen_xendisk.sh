#!/usr/bin/env bash
# Xen lab scenario lab/xen/scenarios/xendisk.sh (see its header).
set -euo pipefail
exec "$ROOT/lab/xen/run-scenario.sh" xendisk "$BUILD"
