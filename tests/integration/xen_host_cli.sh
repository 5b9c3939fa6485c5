#!/usr/bin/env bash
# The Xen backend's commands off Xen (this host has no hypervisor): every
# refusal is a clear one-line error with the right exit status.  The
# commands themselves run on real Xen in the lab (tests/lab/xen_xensave.sh,
# xen_xenprotect.sh); the lab's judges (guest-died.sh, the continuity
# check) are tested by xen_lab_checks.sh.
set -euo pipefail
TMP=$(mktemp -d /tmp/remus-xencli.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
R="$BUILD/remus"
fails=0
expect() {   # expect STATUS PATTERN -- CMD...
    local want=$1 pat=$2; shift 3
    local rc=0
    "$@" > "$TMP/out" 2>&1 || rc=$?
    if [ "$rc" != "$want" ] || ! grep -q -- "$pat" "$TMP/out"; then
        echo "FAIL: $* -> exit $rc (want $want), output:"; cat "$TMP/out"
        fails=$((fails + 1))
    else
        echo "ok: $* -> $rc: $(head -1 "$TMP/out")"
    fi
}
printf 'name = "g1"\nmemory = 128\n' > "$TMP/g.cfg"
printf 'memory = 128\n' > "$TMP/noname.cfg"
: > "$TMP/s.rms"
expect 1 "runs in dom0" -- "$R" save --xen g1 "$TMP/out.rms"
[ ! -e "$TMP/out.rms" ] || { echo "FAIL: a failed save left its file"; fails=$((fails + 1)); }
expect 1 "runs in dom0" -- "$R" protect --xen --insecure -i 100 g1 127.0.0.1:7
expect 1 "runs in dom0" -- "$R" restore --xen --config "$TMP/g.cfg" "$TMP/s.rms"
expect 1 "runs in dom0" -- "$R" receive --xen --insecure --config "$TMP/g.cfg" --listen 127.0.0.1:0
# Keyed by default, as on KVM: no key is refused before anything is touched.
expect 1 "no pre-shared key" -- env -u REMUS_KEY_FILE "$R" protect --xen -i 100 g1 127.0.0.1:7
expect 1 "no pre-shared key" -- env -u REMUS_KEY_FILE "$R" receive --xen --config "$TMP/g.cfg" --listen 127.0.0.1:0
# The same split-brain options as on KVM (primary/session.h, secondary/session.h).
expect 2 "not a quorum service" -- "$R" protect --xen --quorum zookeeper g1 127.0.0.1:7
expect 2 "a blackhole has no" -- "$R" protect --xen -F -b --quorum corosync g1
expect 2 "not a quorum service" -- "$R" receive --xen --quorum zookeeper --config "$TMP/g.cfg" --listen 127.0.0.1:0
expect 2 "a number from 1" -- "$R" receive --xen --fence-timeout 0 --config "$TMP/g.cfg" --listen 127.0.0.1:0
expect 0 "--fence-cmd CMD" -- "$R" receive --xen --help
expect 2 "need -F" -- "$R" protect --xen -n g1 127.0.0.1:7
# Disks (VBDs) are not replicated: -d lets them go so, only with -F; with
# it the command goes on to Xen (the refusal naming the VBDs: lab xendevices).
expect 2 "need -F" -- "$R" protect --xen -d g1 127.0.0.1:7
expect 1 "runs in dom0" -- "$R" protect --xen --insecure -F -d -i 100 g1 127.0.0.1:7
expect 2 "expected DOMAIN and HOST:PORT" -- "$R" protect --xen g1
expect 2 "a number from 1" -- "$R" protect --xen -i 0 g1 127.0.0.1:7
expect 2 "--config CFG" -- "$R" restore --xen "$TMP/s.rms"
expect 2 "has no name" -- "$R" restore --xen --config "$TMP/noname.cfg" "$TMP/s.rms"
expect 2 "cannot read '$TMP/missing.cfg'" -- "$R" receive --xen --config "$TMP/missing.cfg" --listen 127.0.0.1:0
expect 2 "--listen" -- "$R" receive --xen --config "$TMP/g.cfg"
expect 2 "expected DOMAIN and FILE" -- "$R" save --xen g1
expect 2 "unknown option" -- "$R" save --xen --bogus g1 f
expect 2 "not a Xen command" -- "$R" status --xen
expect 0 "usage: remus protect --xen" -- "$R" protect --xen --help
expect 1 "runs in dom0" -- "$R" offline-page --xen g1 0x1234
expect 1 "runs in dom0" -- "$R" offline-page --xen --config "$TMP/g.cfg" g1 0x1234
expect 1 "runs in dom0" -- "$R" offline-page --xen --status 0x1234
expect 2 "MFN 'zz' is not a number" -- "$R" offline-page --xen g1 zz
expect 2 "expected DOMAIN and MFN" -- "$R" offline-page --xen g1
expect 0 "A 64-bit PV guest (no --config) moves in place" -- "$R" offline-page --xen --help

[ $fails = 0 ]
