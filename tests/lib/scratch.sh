# Sourced by a test script that runs remus processes of its own: $TMP, a
# fresh directory (removed at exit; kept with KEEP_TMP=1), REMUS_RUN_DIR
# inside it (status files, control sockets), and PIDS: every pid added is
# killed at exit.
TMP=$(mktemp -d /tmp/remus-test.XXXXXX)
export REMUS_RUN_DIR="$TMP/run"
PIDS=()
scratch_cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "logs kept in $TMP"; else rm -rf "$TMP"; fi
}
trap scratch_cleanup EXIT
