#!/usr/bin/env bash
# Xen lab scenario lab/xen/scenarios/xeninflight.sh (see its header).
set -euo pipefail
exec "$ROOT/lab/xen/run-scenario.sh" xeninflight "$BUILD"
