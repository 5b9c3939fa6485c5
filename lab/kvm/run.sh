#!/usr/bin/env bash
# The suite's KVM tests on a machine without /dev/kvm: inside a Linux
# machine that QEMU emulates with TCG, whose CPU has AMD's SVM, so its
# kernel's kvm_amd gives it a /dev/kvm (lab/kvm/README.md).
#   lab/kvm/run.sh BUILD [BUILD ...]
# Runs, inside that machine, `tests/run-tests.sh --kvm-only BUILD...` on
# this tree and these build directories (packed in at the same paths),
# prints its verdict lines as they come and exits with its status: 0 when
# every KVM test passed, 1 when one failed or the machine did not finish.
# ONLY=NAME[,NAME...] as for run-tests.sh; CL_FORM_SECS (default 120 here)
# how long tests/lib/cluster.sh waits for corosync; REMUS_TEST_SLOW
# (default 4 here) scales the tests' waits and relay delays
# (tests/lib/wait.sh).  KVM_LAB_TIMEOUT (seconds, default 3600) bounds
# the whole run, TEST_TIMEOUT (default 1800 here) each test; KVM_LAB_MEM (MiB, default 4096); KVM_LAB_KEEP=1 keeps the work
# directory (the whole console log is console.log there).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
[ $# -ge 1 ] || { echo "usage: $0 BUILD [BUILD ...]" >&2; exit 2; }
for t in qemu-system-x86_64 debootstrap cpio; do
    command -v "$t" > /dev/null ||
        { echo "kvm-lab: $t is missing (make deps installs it)" >&2; exit 2; }
done
for b in "$@"; do
    [ -x "$b/remus" ] || { echo "kvm-lab: $b/remus is missing (build it first)" >&2; exit 2; }
done
git rev-parse --git-dir > /dev/null 2>&1 ||
    { echo "kvm-lab: $ROOT is not a git checkout (the tree is packed from git ls-files)" >&2; exit 2; }

# The root's packages: the Debian packages of every library the builds'
# programs load (asked of dpkg under each path the library may have: with
# merged /usr, dpkg may know it under /lib where ldd names /usr/lib, or
# under its symlink's target), and the programs the KVM tests run.
lib_packages() {   # lib_packages BUILD...
    local b f l r c p
    for b in "$@"; do
        for f in "$b/remus" "$b"/tests/*; do
            if [ -f "$f" ] && [ -x "$f" ]; then ldd "$f" 2>/dev/null || true; fi
        done
    done | awk '$3 ~ /^\// {print $3}' | sort -u | while read -r l; do
        r=$(readlink -f "$l")
        for c in "$l" "${l#/usr}" "$r" "${r#/usr}" /usr"$l" /usr"$r" ""; do
            [ -n "$c" ] || { echo "kvm-lab: no Debian package has $l" >&2; break; }
            if p=$(dpkg -S "$c" 2>/dev/null); then
                printf '%s\n' "$p" | head -1 | cut -d: -f1; break
            fi
        done
    done | sort -u
}
libs=$(lib_packages "$@")
[ -n "$libs" ] || { echo "kvm-lab: no library of $* was found in a Debian package" >&2; exit 1; }
tools="bash kmod iproute2 procps python3 curl iputils-ping strace
       openssh-server openssh-client corosync corosync-qdevice corosync-qnetd
       resource-agents pacemaker pacemaker-cli-utils systemd qemu-system-x86
       libasan8 libubsan1 libxml2-utils prometheus python3-prometheus-client"
# shellcheck disable=SC2086
CACHE=$(lab/kvm/build-image.sh $tools $libs | tail -1)

WORK=$(mktemp -d /tmp/kvm-lab.XXXXXX)
if [ "${KVM_LAB_KEEP:-0}" != 1 ]; then trap 'rm -rf "$WORK"' EXIT; fi
ov="$WORK/overlay"
mkdir -p "$ov$ROOT"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$ov$ROOT"
for b in "$@"; do
    mkdir -p "$ov$ROOT/$(dirname "$b")"
    cp -a "$b" "$ov$ROOT/$b"
done
# systemd_units tests the installed units; `make install` needs build
# tools, which the machine's root has not: each build is installed here,
# into the root, at the prefix the test looks for there
# (REMUS_TEST_INSTALLED/BUILD, tests/integration/systemd_units.sh).
inst=/kvm-lab-inst
for b in "$@"; do
    n=$(basename "$b"); asan=0
    [ "$n" != build-asan ] || asan=1
    make -s --no-print-directory BUILD="$b" ASAN=$asan install DESTDIR="$ov" \
        prefix="$inst/$n/usr" sysconfdir="$inst/$n/etc" > "$WORK/install-$n.log" 2>&1 ||
        { echo "kvm-lab: make install of $b failed:" >&2; cat "$WORK/install-$n.log" >&2; exit 1; }
done
cat > "$ov/kvm-lab.env" <<EOF
KVM_LAB_ROOT='$ROOT'
KVM_LAB_BUILDS='$*'
KVM_LAB_ONLY='${ONLY:-}'
TEST_TIMEOUT='${TEST_TIMEOUT:-1800}'
export CL_FORM_SECS='${CL_FORM_SECS:-120}'
export REMUS_TEST_SLOW='${REMUS_TEST_SLOW:-4}'
export REMUS_TEST_INSTALLED='$inst'
EOF
(cd "$ov" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/overlay.cpio.gz"
# Two archives one after the other: the kernel unpacks both, the second
# over the first.
cat "$CACHE/root.cpio.gz" "$WORK/overlay.cpio.gz" > "$WORK/initrd"

# thread=single: with thread=multi the machine's own kernel died within
# a minute of running guests (lab/kvm/README.md).
echo "kvm-lab: booting (QEMU TCG, SVM), the KVM tests of $*"
# The console file exists before tail below opens it (QEMU's redirection
# is made by the background shell, which may come later: tail then found
# no file, gave up, and the run was judged unfinished).
: > "$WORK/console.raw"
timeout "${KVM_LAB_TIMEOUT:-3600}" qemu-system-x86_64 \
    -accel tcg,thread=single -cpu Opteron_G3,+svm,+npt \
    -m "${KVM_LAB_MEM:-4096}" -smp 2 -nographic -no-reboot \
    -kernel "$CACHE/vmlinuz" -initrd "$WORK/initrd" \
    -append "console=ttyS0 rdinit=/init quiet panic=-1" \
    >> "$WORK/console.raw" 2>&1 < /dev/null &
qemu=$!
# The console, line by line as it comes (sed -u: a block-buffered filter
# would hold the lines back), and a watchdog: init prints "kvm-lab:
# alive" every 60 s, so a console silent for KVM_LAB_STALL seconds
# (default 300) is a machine that stopped, not a slow test.
tail -n +1 -f --pid=$qemu "$WORK/console.raw" | sed -u 's/\r$//' |
    tee "$WORK/console.log" |
    grep --line-buffered -E '^(ok |FAIL|SKIP|== |kvm-lab: [^a]|      why:|      \| )|^[0-9]+ passed,' &
shown=$!
stalled=0
while kill -0 "$qemu" 2>/dev/null; do
    sleep 10
    if [ $(( $(date +%s) - $(stat -c %Y "$WORK/console.raw") )) -gt "${KVM_LAB_STALL:-300}" ]; then
        stalled=1; kill "$qemu" 2>/dev/null || true; break
    fi
done
wait "$qemu" || true
wait "$shown" || true
ended=$(grep -E '^kvm-lab: exit [0-9]+$' "$WORK/console.log" | tail -1 | awk '{print $3}' || true)
if [ -z "$ended" ]; then
    if [ "$stalled" = 1 ]; then
        echo "FAIL  kvm-lab: the machine stopped: its console was silent for ${KVM_LAB_STALL:-300} s; its console's tail:"
    else
        echo "FAIL  kvm-lab: the machine did not finish (a timeout after ${KVM_LAB_TIMEOUT:-3600} s, or its kernel died); its console's tail:"
    fi
    grep -v '^\s*$' "$WORK/console.log" | tail -30 | sed 's/^/      | /'
    exit 1
fi
[ "$ended" = 0 ]
