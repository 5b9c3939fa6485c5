#!/usr/bin/env bash
# The runner's nested KVM lab (tests/run-tests.sh, run_kvm_lab): on a
# machine without /dev/kvm (here made so with REMUS_TEST_HIDE_KVM=1), a
# full run hands the first build's KVM tests to the lab, shows its verdict
# lines under kvm-lab/ and adds its closing counts to its own.  The lab is
# a stand-in script (KVM_LAB_RUN) that prints what lab/kvm/run.sh prints;
# the real one is slow (lab/kvm/README.md).  What must fail does: a test
# that failed in the lab, a lab that ended without its counts (its machine
# died), a lab that exited 1 with no failure counted.
set -euo pipefail
. "$ROOT/tests/lib/wait.sh"
T=$(mktemp -d /tmp/remus-runner.XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/b/tests"
printf '#!/bin/sh\nexit 0\n' > "$T/b/remus"
chmod +x "$T/b/remus"
counts() { echo "$1 passed, $2 failed, 0 skipped, 0 retried, 0 with a step skipped"; }
lab() {   # lab NAME SHELL-BODY: a stand-in for lab/kvm/run.sh ($1: the build)
    printf '#!/usr/bin/env bash\n%s\n' "$2" > "$T/$1"
}
lab pass "echo \"ok    \$1/kvm_run (3s)\"; echo \"asked for: \$ONLY\"; echo '$(counts 1 0)'"
lab fail "echo \"FAIL  \$1/kvm_run (exit 1, 3s)\"; echo '      why: broken on purpose'; echo '$(counts 0 1)'; exit 1"
lab died "echo 'FAIL  kvm-lab: the machine did not finish'; exit 1"
lab lies "echo '$(counts 1 0)'; exit 1"
# runner LAB: the runner on $T/b with ONLY=kvm_run and LAB as the lab; its
# output in $T/LAB.out, its exit status on stdout.
runner() {
    local rc=0
    REMUS_TEST_HIDE_KVM=1 KVM_LAB_RUN="$T/$1" ONLY=kvm_run \
        bash "$ROOT/tests/run-tests.sh" "$T/b" > "$T/$1.out" 2>&1 || rc=$?
    echo "$rc"
}
# check LAB RC LAST [PATTERN]: the runner exited RC, its last line is
# LAST, PATTERN is in its output
check() {
    local rc
    rc=$(runner "$1")
    [ "$rc" = "$2" ] || { echo "lab '$1': the runner exited $rc, not $2"; cat "$T/$1.out"; return 1; }
    [ "$(tail -1 "$T/$1.out")" = "$3" ] ||
        { echo "lab '$1': the runner's last line is '$(tail -1 "$T/$1.out")', not '$3'"; cat "$T/$1.out"; return 1; }
    if [ -n "${4:-}" ] && ! grep -q -- "$4" "$T/$1.out"; then
        echo "lab '$1': no '$4' in the runner's output"; cat "$T/$1.out"; return 1
    fi
}
check pass 0 "$(counts 1 0)" "^ok    kvm-lab/$T/b/kvm_run (3s)"
grep -q "^== nested KVM lab ($T/b: 1 tests)" "$T/pass.out" || { cat "$T/pass.out"; exit 1; }
grep -qx "asked for: kvm_run" "$T/pass.out" || { echo "the lab was not asked for kvm_run alone"; cat "$T/pass.out"; exit 1; }
echo "a lab whose test passed: the runner passes, counting it ($(tail -1 "$T/pass.out"))"
# the stand-in that passes must not pass where each of these is made to
# fail: negative controls of the runner's verdict
check fail 1 "$(counts 0 1)" "^failed: kvm-lab/$T/b/kvm_run"
echo "negative control ok: a test that failed in the lab fails the run"
check died 1 "$(counts 0 1)" "^FAIL  kvm-lab (exit 1: it ended without its counts)"
echo "negative control ok: a lab that ended without its counts fails the run"
check lies 1 "$(counts 1 1)" "^FAIL  kvm-lab (exit 1 although none of its tests failed)"
echo "negative control ok: a lab that exited 1 without a failure fails the run"
# the check itself fails when the runner's verdict is wrong: 'pass' judged
# as if it should have failed
must_fail "the stand-in that passes, judged as failing" check pass 1 "$(counts 0 1)"
echo "runner_kvm_lab: the nested KVM lab's verdicts count in the run's"
