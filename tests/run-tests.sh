#!/usr/bin/env bash
# Run the whole suite against one or more build directories:
#   tests/run-tests.sh build [build-asan ...]
# Unit tests: every executable $BUILD/tests/test_* (cmocka; each test case
# counts).  Integration tests: every tests/integration/*.sh, once per build
# directory, with REMUS, BUILD and ROOT set.  Exit 77 means "skip" and is
# only honoured when the script says why; it is reported loudly.
# Ends with the line "N passed, N failed" (", N skipped" if any).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
TIMEOUT=${TEST_TIMEOUT:-300}
passed=0 failed=0 skipped=0
failures=()
LOGDIR=$(mktemp -d /tmp/remus-tests.XXXXXX)

run_unit() {
    local bin=$1 name out rc p f
    name="$(basename "$(dirname "$(dirname "$bin")")")/$(basename "$bin")"
    out="$LOGDIR/$(echo "$name" | tr / _).log"
    CMOCKA_MESSAGE_OUTPUT=STDOUT timeout -k 5 "$TIMEOUT" "$bin" >"$out" 2>&1
    rc=$?
    p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$out" | awk '{print $4}' | tail -1)
    f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$out" | awk '{print $4}' | tail -1)
    p=${p:-0}; f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1   # crashed, timed out or failed outside a test case
    fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" -ne 0 ]; then
        echo "FAIL  $name ($p passed, $f failed, exit $rc)"
        failures+=("$name")
        sed 's/^/      | /' "$out" | tail -40
    else
        echo "ok    $name ($p cases)"
    fi
}

run_integration() {
    local build=$1 script=$2 name out rc start secs
    name="$build/$(basename "$script" .sh)"
    out="$LOGDIR/$(echo "$name" | tr / _).log"
    start=$(date +%s)
    REMUS="$ROOT/$build/remus" BUILD="$ROOT/$build" ROOT="$ROOT" \
        timeout -k 5 "$TIMEOUT" bash "$script" >"$out" 2>&1 </dev/null
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1)); echo "ok    $name (${secs}s)"
    elif [ "$rc" -eq 77 ]; then
        skipped=$((skipped + 1))
        echo "SKIP  $name: $(tail -1 "$out")"
    else
        failed=$((failed + 1)); failures+=("$name")
        [ "$rc" -eq 124 ] && echo "FAIL  $name (timed out after ${TIMEOUT}s)" \
                          || echo "FAIL  $name (exit $rc, ${secs}s)"
        sed 's/^/      | /' "$out" | tail -60
    fi
}

LAB=all
if [ "${1:-}" = "--lab-only" ]; then LAB=only; shift; fi
if [ "${1:-}" = "--no-lab" ]; then LAB=none; shift; fi   # quick iterations
[ $# -ge 1 ] || { echo "usage: $0 [--lab-only|--no-lab] BUILD_DIR..." >&2; exit 2; }
for build in "$@"; do
    [ "$LAB" = only ] && break
    echo "== $build"
    [ -x "$build/remus" ] || { echo "FAIL  $build/remus is missing"; failed=$((failed+1)); continue; }
    for bin in "$build"/tests/test_*; do
        [ -x "$bin" ] && [ -f "$bin" ] && run_unit "$bin"
    done
    for script in tests/integration/*.sh; do
        [ -f "$script" ] && run_integration "$build" "$script"
    done
done
# The Xen lab (tests/lab/*.sh): real Xen in QEMU, once, with the first
# build directory (its binaries run inside dom0; ASan builds would not).
if [ "$LAB" != none ]; then
    echo "== Xen lab ($1)"
    TIMEOUT=${LAB_TIMEOUT:-1200}
    for script in tests/lab/*.sh; do
        [ -f "$script" ] && run_integration "$1" "$script"
    done
fi

echo
if [ ${#failures[@]} -gt 0 ]; then
    echo "failed: ${failures[*]}"
    echo "logs: $LOGDIR"
else
    rm -rf "$LOGDIR"
fi
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
