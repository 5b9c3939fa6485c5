# Source me.  wait_until SECONDS WHAT CMD [ARG...]: run CMD every 0.1 s
# until it succeeds; after SECONDS, say what was not reached and return 1
# (under set -e the script then fails: a wait that times out is a failure).
wait_until() {
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 10; i++)); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    echo "timed out after ${secs} s waiting for: $what" >&2
    return 1
}
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
