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
# One protect/receive for both backends: the backend comes from --xen or
# the VM's description (backend = xen: the domain `name`, the replica from
# `xl_config`); an option of the other backend is refused by name.
printf 'name = "g1"\nbackend = xen\nxl_config = %s\n' "$TMP/g.cfg" > "$TMP/xen.vm"
printf 'name = "g1"\nbackend = xen\n' > "$TMP/xen-noxl.vm"
printf 'name = "g1"\nbackend = hyperv\n' > "$TMP/bad.vm"
printf 'name = "g1"\nmemory = 16\n' > "$TMP/kvm.vm"
expect 1 "runs in dom0" -- "$R" protect --insecure -i 100 "$TMP/xen.vm" 127.0.0.1:7
expect 1 "runs in dom0" -- "$R" receive --insecure --config "$TMP/xen.vm" --listen 127.0.0.1:0
expect 2 "needs the guest's xl config" -- "$R" receive --insecure --config "$TMP/xen-noxl.vm" --listen 127.0.0.1:0
expect 2 "backend 'hyperv': kvm or xen" -- "$R" protect --insecure "$TMP/bad.vm" 127.0.0.1:7
expect 2 "is for a KVM VM; this VM is a Xen domain" -- "$R" protect --insecure --xen --release-log "$TMP/r" g1 127.0.0.1:7
expect 2 "is for a KVM VM; this VM is a Xen domain" -- "$R" protect --insecure --memory 32 "$TMP/xen.vm" 127.0.0.1:7
expect 2 "--suspend-timeout is for a Xen domain" -- "$R" protect --insecure --suspend-timeout 100 "$TMP/kvm.vm" 127.0.0.1:7
expect 2 "is for a KVM replica; this is a Xen guest" -- "$R" receive --insecure --xen --tap t0 --config "$TMP/g.cfg" --listen 127.0.0.1:0
[ ! -e "$TMP/r" ] || { echo "FAIL: a refused protect created its release log"; fails=$((fails + 1)); }
# protect --xen DOMAIN HOST starts its receiver (-s CMD): the options parse
expect 1 "runs in dom0" -- "$R" receive --xen --insecure --announce --config "$TMP/g.cfg" --listen 127.0.0.1:0
expect 1 "runs in dom0" -- "$R" protect --xen --insecure --suspend-timeout 500 g1 127.0.0.1:7
expect 1 "runs in dom0" -- "$R" protect --xen --insecure -s "ip netns exec" --peer-config /x.cfg g1 somehost
expect 2 "give HOST without :PORT" -- "$R" protect --xen --insecure -s ssh g1 127.0.0.1:7
expect 2 "a blackhole has no receiver" -- "$R" protect --xen -F -b g1 somehost
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
expect 2 "HOST:PORT of the secondary is missing" -- "$R" protect --xen g1
expect 2 "a number from 1" -- "$R" protect --xen -i 0 g1 127.0.0.1:7
expect 2 "--config CFG" -- "$R" restore --xen "$TMP/s.rms"
expect 2 "has no name" -- "$R" restore --xen --config "$TMP/noname.cfg" "$TMP/s.rms"
expect 2 "cannot read '$TMP/missing.cfg'" -- "$R" receive --xen --config "$TMP/missing.cfg" --listen 127.0.0.1:0
expect 2 "--listen" -- "$R" receive --xen --config "$TMP/g.cfg"
expect 2 "expected DOMAIN and FILE" -- "$R" save --xen g1
expect 2 "unknown option" -- "$R" save --xen --bogus g1 f
expect 2 "not a Xen command" -- "$R" status --xen
expect 0 "remus protect --xen \[OPTIONS\] DOMAIN HOST:PORT" -- "$R" protect --xen --help
expect 1 "runs in dom0" -- "$R" offline-page --xen g1 0x1234
expect 1 "runs in dom0" -- "$R" offline-page --xen --config "$TMP/g.cfg" g1 0x1234
expect 1 "runs in dom0" -- "$R" offline-page --xen --status 0x1234
expect 2 "MFN 'zz' is not a number" -- "$R" offline-page --xen g1 zz
expect 2 "expected DOMAIN and MFN" -- "$R" offline-page --xen g1
expect 0 "A 64-bit PV guest (no --config) moves in place" -- "$R" offline-page --xen --help

# --xen anywhere among the options picks the Xen command (cli/main.c), not
# only first; the KVM command never sees it.
expect 1 "runs in dom0" -- "$R" save --live --xen g1 "$TMP/out2.rms"
[ ! -e "$TMP/out2.rms" ] || { echo "FAIL: a failed save (--xen not first) left its file"; fails=$((fails + 1)); }
expect 2 "--suspend-timeout 0: a number from 1" -- "$R" save -c --xen --suspend-timeout 0 g1 f
expect 0 "usage: remus save --xen" -- "$R" save --live --xen --help
expect 1 "runs in dom0" -- "$R" restore --config "$TMP/g.cfg" --xen "$TMP/s.rms"
expect 2 "--config CFG (the guest's xl config) is required with --xen" -- "$R" restore --paused --xen "$TMP/s.rms"
expect 0 "usage: remus restore --xen" -- "$R" restore --paused --xen --help
expect 1 "runs in dom0" -- "$R" offline-page --config "$TMP/g.cfg" --xen g1 0x1234
expect 1 "runs in dom0" -- "$R" offline-page --status --xen 0x1234
expect 0 "A 64-bit PV guest (no --config) moves in place" -- "$R" offline-page --status --xen --help
expect 1 "runs in dom0" -- "$R" protect --insecure -i 100 --xen g1 127.0.0.1:7
expect 2 "not a Xen command" -- "$R" stream-info -q --xen f
expect 2 "unknown command 'bogus'" -- "$R" bogus --xen
# One number parser for the whole CLI (cli/cli_num.c): a bad value names
# the option, the value and the range; one case per parser shape.
expect 2 "--suspend-timeout 0: a number from 1 to 3600000" -- "$R" save --xen --suspend-timeout 0 g1 f
expect 2 "--quorum-settle 3600001: a number from 1 to 3600000" -- "$R" receive --xen --quorum-settle 3600001 --config "$TMP/g.cfg" --listen 127.0.0.1:0
expect 2 "--heartbeat -1: a number from 1 to 3600000" -- "$R" protect --xen --heartbeat -1 g1 127.0.0.1:7
expect 2 "--heartbeat 0: a number from 1 to 3600000" -- "$R" receive --heartbeat=0 --listen 127.0.0.1:0
expect 2 "--netbuf-max-bytes 4095: a number of at least 4096" -- "$R" protect --netbuf-max-bytes 4095 g1 127.0.0.1:7
expect 2 "--seed 18446744073709551616: a number of at least 1" -- "$R" drill --seed 18446744073709551616
expect 2 "MFN '0x1g' is not a number" -- "$R" offline-page --xen g1 0x1g
expect 2 "MFN '12k' is not a number" -- "$R" offline-page --xen --status 12k

[ $fails = 0 ]
