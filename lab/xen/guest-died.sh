#!/usr/bin/env bash
# lab/xen/guest-died.sh RESULTS-DIR|SERIAL-LOG: did the guest under test
# die on its own in this lab run, so that a failed scenario may be retried?
# Nested SVM under QEMU's TCG is not flawless (lab/xen/README.md): a guest
# may triple-fault or be crashed by Xen with no fault of ours.  But a bug
# in our save, restore, failover or page offlining looks exactly the same,
# so a death counts as "on its own" only when
#  - the dead domain is a guest the scenario announced as under test
#    ("lab-mark: guest DOMID NAME", scenario-lib.sh's lab_guest), and
#  - no operation of ours on it (or on all domains) had begun before it
#    ("lab-mark: begin DOMID... : WHAT", scenario-lib.sh's op_begin).
# A guest whose kernel panics crashes itself with no word from Xen:
# guest-watch.sh, beside the scenario, reports it ("lab-mark: crashed DOMID
# NAME: ..."), and that line is judged like Xen's.  The throwaway guest of
# warmup.sh ("lab-mark: warmup DOMID NAME"), booted before the scenario,
# is left out: its death is not the scenario's, either way.
# The markers are written to dom0's console, that is Xen's, so serial.log
# holds them in order with Xen's messages; that order is what is judged.
# Exit 0: every death found is a guest's own; the first line says which
#         (the reason a retry gives), the next lines the evidence.
# Exit 1: no guest death in the log.
# Exit 3: a death that may be ours (another domain, or after an operation
#         on it): printed with why; the failure is ours to explain.
# With a RESULTS-DIR, the dead domain's registers (dead-DOMID.txt, from
# guest-watch.sh) are read too: a vCPU that holds Xen's own state (its code
# selector Xen's, 0xe008, its rip in Xen's text, 0xffff82d0...) was mixed
# up with its hypervisor's by the nested SVM under TCG; no save, restore or
# takeover of ours writes such a state into the guest under test, so its
# death counts as its own even after an operation began (said so); another
# domain's (a replica's state came through us) stays one that may be ours.
set -uo pipefail
arg=${1:?usage: guest-died.sh RESULTS-DIR|SERIAL-LOG}
log=$arg
dir=
if [ -d "$arg" ]; then log=$arg/serial.log; dir=$arg; fi
[ -r "$log" ] || { echo "guest-died: no log $log" >&2; exit 1; }
awk -v dir="$dir" '
# Does the dump of domain d show the state of Xen itself in its vCPU?
function xen_state(d,    f, line, cs, rip) {
    if (dir == "")
        return 0
    f = dir "/dead-" d ".txt"
    while ((getline line < f) > 0) {
        if (line ~ /^ *cs 0xe008 /)
            cs = 1
        if (line ~ /^ *rip 0xffff82d0[0-9a-f]+ /)
            rip = 1
    }
    close(f)
    return cs && rip
}
function death(d, line,    why, mixed) {
    if (d in warm)
        return    # the throwaway guest of warmup.sh: nothing of the scenario ran on it
    sub(/^[^(]*\(XEN\) */, "", line)
    mixed = xen_state(d)
    if (mixed) {
        line = line " [its vCPU holds Xen'"'"'s own state (cs 0xe008, rip in Xen'"'"'s text): nested SVM under TCG]"
        if (d in guest) {
            own++
            out[++n] = "on its own: domain " d " (" guest[d] ") whatever ran on it: " line
            if (first == "")
                first = "domain " d " (" guest[d] ") died of the lab, not of remus (" line ")"
            return
        }
    }
    if (!(d in guest))
        why = "domain " d " is not a guest under test"
    else if (d in op)
        why = "domain " d " (" guest[d] ") died after \"" op[d] "\" on it began"
    else if (opall != "")
        why = "domain " d " (" guest[d] ") died after \"" opall "\" on all domains began"
    if (why != "") {
        ours++; out[++n] = "may be ours: " why ": " line
    } else {
        own++; out[++n] = "on its own: domain " d " (" guest[d] ") died before any operation of ours on it: " line
        if (first == "") first = "domain " d " (" guest[d] ") died on its own before any operation of ours on it (" line ")"
    }
}
/lab-mark: warmup [0-9]+ / {
    s = $0; sub(/.*lab-mark: warmup /, "", s); sub(/ .*/, "", s); warm[s] = 1; next
}
/lab-mark: guest [0-9]+ / {
    s = $0; sub(/.*lab-mark: guest /, "", s); split(s, f, " ")
    guest[f[1]] = f[2]; next
}
/lab-mark: begin / {
    s = $0; sub(/.*lab-mark: begin /, "", s)
    what = s; sub(/^[^:]*: */, "", what); sub(/ *:.*/, "", s)
    k = split(s, ids, " ")
    for (i = 1; i <= k; i++) { if (ids[i] == "all") opall = what; else op[ids[i]] = what }
    next
}
/lab-mark: crashed [0-9]+ / {
    s = $0; sub(/.*lab-mark: crashed /, "", s); sub(/ .*/, "", s); death(s, $0); next
}
/lab-mark: / { next }
match($0, /d[0-9]+v[0-9]+ (Triple fault|Unexpected vmexit|Unhandled nested vmexit|Unhandled: vec)/) {
    s = substr($0, RSTART + 1); sub(/v.*/, "", s); death(s, $0); next
}
match($0, /Domain [0-9]+ (\(vcpu#[0-9]+\) crashed on cpu#|reported crashed by domain)/) {
    s = substr($0, RSTART + 7); sub(/ .*/, "", s); death(s, $0); next
}
match($0, /d[0-9]+ L1TF-vulnerable .*Crashing/) {
    s = substr($0, RSTART + 1); sub(/ .*/, "", s); death(s, $0); next
}
END {
    if (n == 0) exit 1
    if (ours == 0) print first
    for (i = 1; i <= n; i++) print out[i]
    exit ours ? 3 : 0
}' "$log"
