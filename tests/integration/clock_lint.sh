#!/usr/bin/env bash
# Every deadline is measured on CLOCK_MONOTONIC (issue #16, item 3): a
# wall-clock step must never declare a peer lost or make a wait last for
# good.  Checks the sources (not the build):
#  - CLOCK_REALTIME only where a wall-clock timestamp is wanted, never for
#    a deadline: the allowed uses are listed below by file and function;
#  - no gettimeofday() and no time(NULL) except the drill's random seed;
#  - every condition variable is made by rm_cond_init_monotonic() (whose
#    timed waits measure CLOCK_MONOTONIC), never by a bare
#    pthread_cond_init(), and every pthread_cond_timedwait() deadline
#    comes from rm_deadline_ts().
set -euo pipefail
cd "${ROOT:-.}"
SRC="primary secondary common proto netbuf colo cluster ocf backends cli drill bench"
fail=0
bad() { echo "clock_lint: $*"; fail=1; }

# Wall-clock timestamps (not deadlines): rm_unix_ms() for status/heartbeats.
allowed_realtime="common/status.c"
while IFS=: read -r f line _; do
    case " $allowed_realtime " in
        *" $f "*) ;;
        *) bad "$f:$line uses CLOCK_REALTIME (use rm_now_ns/rm_deadline_ts)";;
    esac
done < <(grep -rn --include='*.c' --include='*.h' CLOCK_REALTIME $SRC || true)
# The one allowed use must stay inside rm_unix_ms().
n=$(grep -c CLOCK_REALTIME common/status.c || true)
[ "$n" -le 1 ] || bad "common/status.c uses CLOCK_REALTIME $n times (1 allowed, in rm_unix_ms)"

while IFS= read -r hit; do
    bad "$hit: gettimeofday() (use rm_now_ns)"
done < <(grep -rn --include='*.c' 'gettimeofday' $SRC || true)
while IFS= read -r hit; do
    case "$hit" in drill/drill.c:*seed*) ;; *) bad "$hit: time(NULL)";; esac
done < <(grep -rn --include='*.c' 'time(NULL)' $SRC || true)

while IFS= read -r hit; do
    bad "$hit: a condition variable not made by rm_cond_init_monotonic()"
done < <(grep -rn --include='*.c' 'pthread_cond_init' $SRC | grep -v '^common/io.c:' || true)
grep -q 'pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)' common/io.c ||
    bad "common/io.c: rm_cond_init_monotonic() does not set CLOCK_MONOTONIC"

# Each file with a timed wait computes its deadlines with rm_deadline_ts().
for f in $(grep -rln --include='*.c' 'pthread_cond_timedwait' $SRC || true); do
    grep -q 'rm_deadline_ts(' "$f" || bad "$f: pthread_cond_timedwait() without rm_deadline_ts()"
done

[ "$fail" = 0 ] || { echo "clock_lint: FAILED"; exit 1; }
echo "clock_lint: every deadline is monotonic"
