# Source me.
# REMUS_TEST_SLOW (a whole number, default 1): how many times slower than
# the tests' own timings this machine runs them (the nested KVM lab, whose
# machine QEMU emulates, sets it: lab/kvm/run.sh).  Every bound of
# wait_until (and the waits built on it) is multiplied by it, and so are
# the delays that order a scenario, through slow_ms: a relay that damages
# the stream "6 s after it opened" must still do so after the protection's
# first checkpoints.  Bounds only: nothing is asserted faster for it.
SLOW=${REMUS_TEST_SLOW:-1}
case $SLOW in
''|*[!0-9]*|0) echo "REMUS_TEST_SLOW='$SLOW': want a whole number, 1 or more" >&2; exit 2 ;;
esac
# slow_ms MS: MS scaled by REMUS_TEST_SLOW, on stdout.
slow_ms() { echo $(( $1 * SLOW )); }
# wait_until SECONDS WHAT CMD [ARG...]: run CMD every 0.1 s until it
# succeeds; after SECONDS (times REMUS_TEST_SLOW), say what was not
# reached and return 1 (under set -e the script then fails: a wait that
# times out is a failure).
wait_until() {
    local secs=$(( $1 * SLOW )) what=$2 i
    shift 2
    for ((i = 0; i < secs * 10; i++)); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    echo "timed out after ${secs} s waiting for: $what" >&2
    return 1
}
# wait_clock SECONDS WHAT CMD [ARG...]: as wait_until, but bounded by the
# clock rather than by its polls, for a CMD that itself takes long (under
# TCG a crm_mon takes seconds: 10 polls a second for SECONDS would then
# wait many times SECONDS).  CMD is run at least once.
wait_clock() {
    local secs=$(( $1 * SLOW )) what=$2 end
    shift 2
    end=$(( ${EPOCHREALTIME/./} + secs * 1000000 ))
    until "$@"; do
        if [ "${EPOCHREALTIME/./}" -ge "$end" ]; then
            echo "timed out after ${secs} s waiting for: $what" >&2
            return 1
        fi
        sleep 0.1
    done
}
# alive PID: process PID runs; ended PID: it does not (a child of ours
# that ended counts: bash reaps it at once).  gone PID SECONDS: PID ended
# within SECONDS (times REMUS_TEST_SLOW); when not, says so and returns 1.
alive() { kill -0 "$1" 2>/dev/null; }
ended() { ! alive "$1"; }
gone() { wait_until "$2" "pid $1 to end" ended "$1"; }
# lines_at_least FILE N: FILE exists and has at least N lines.
lines_at_least() { [ -f "$1" ] && [ "$(wc -l < "$1")" -ge "$2" ]; }
# in_file FILE PATTERN: grep -q PATTERN FILE (a missing file is "no").
in_file() { grep -q -- "$2" "$1" 2>/dev/null; }
# must_fail WHAT CMD [ARG...]: a negative control.  CMD is a check run on
# input broken on purpose; it must fail (its output is shown indented).
must_fail() {
    local what=$1 out
    shift
    if out=$("$@" 2>&1); then
        echo "negative control passed, the check cannot fail: $what"
        echo "$out" | sed 's/^/    | /'
        return 1
    fi
    echo "negative control ok ($what): $(echo "$out" | tail -1)"
}
# scenario NAME: scripts that run several scenarios announce each; the
# runner names the last one announced when the script fails.
scenario() { echo "== scenario: $*"; }
