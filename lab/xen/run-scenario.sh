#!/usr/bin/env bash
# Boot Xen + dom0 in QEMU (TCG; lab/xen/README.md says why) and run
# one scenario inside dom0:  lab/xen/run-scenario.sh NAME [BUILD-DIR]
# The scenario is lab/xen/scenarios/NAME.sh; it runs in dom0 with the
# project's binaries (BUILD-DIR/remus, built on the host against Debian's
# libxen-dev) and the PVH guest's kernel, initramfs and config in /payload.
# Its results come back in $XEN_LAB_OUT/NAME/ (default build/xen-lab):
# scenario.log, scenario.rc, xen-logs/ (guest consoles), xl-dmesg.log, and
# the serial log of the whole boot (serial.log).  Exit: the scenario's.
# A failed scenario whose guest under test died on its own (guest-died.sh)
# is run again, at most XEN_LAB_RETRIES times (default 2), and one whose
# guest died in a way that may be ours at most XEN_LAB_RETRY_OURS times
# (default 1, reported "RETRIED: MAY BE OURS: ..."); each failed try
# is kept in $XEN_LAB_OUT/NAME.try-N, and a pass after a retry prints one
# line "RETRIED: <reason>" per retry on stdout (tests/run-tests.sh reports
# it as "ok (retried: ...)").
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NAME=${1:?usage: run-scenario.sh NAME [BUILD-DIR]}
BUILD=${2:-$ROOT/build}
SCEN="$HERE/scenarios/$NAME.sh"
[ -f "$SCEN" ] || { echo "xen-lab: no scenario $SCEN"; exit 2; }
"$HERE/build-image.sh"
CACHE_ROOT=${XEN_LAB_CACHE:-/var/cache/remus/xen-lab}
KEY=$(cat "$HERE/build-image.sh" "$HERE"/rootfs/* | sha256sum | cut -c1-12)
CACHE="$CACHE_ROOT/$KEY"
OUT=${XEN_LAB_OUT:-$ROOT/build/xen-lab}/$NAME
RETRIES=${XEN_LAB_RETRIES:-2}
rm -rf "$OUT".try-*   # a previous run's failed tries
WORK=$(mktemp -d /tmp/remus-xenlab.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# The payload: a cpio appended to dom0's initramfs.
p="$WORK/payload/payload"
mkdir -p "$p"
# The scenario runs under a deadline (so that its log comes back even when
# it hangs) and its output is copied to dom0's console as it runs (so that
# serial.log shows how far it got); guest-watch.sh reports crashed guests
# there too.
cp "$SCEN" "$p/scenario-body.sh"; chmod +x "$p/scenario-body.sh"
DEADLINE=$(( ${XEN_LAB_TIMEOUT:-900} - 180 ))
cat > "$p/scenario.sh" <<EOS
#!/bin/sh
tail -n +1 -f /results/scenario.log 2>/dev/null | sed 's/^/scenario: /' > /dev/console &
./guest-watch.sh &
set -a; . ./scenario-env; set +a
./scenario-body.sh &
body=\$!
(
    sleep $DEADLINE
    kill -0 \$body 2>/dev/null || exit 0
    exec > /dev/console 2>&1
    echo "lab: the scenario did not end within $DEADLINE s: what hangs, then kill"
    for f in /var/log/xen/console/guest-*.log; do echo "== \$f"; tail -5 "\$f"; done
    for d in /proc/[0-9]*; do
        c=\$(tr '\\0' ' ' < \$d/cmdline 2>/dev/null)
        [ -n "\$c" ] && echo "\${d#/proc/} \$(cat \$d/wchan 2>/dev/null) \$c"
    done | tail -25
    kill -KILL \$body
    xl list; xl dmesg | tail -60
) &
wait \$body
rc=\$?
sleep 1
exit \$rc
EOS
chmod +x "$p/scenario.sh"
echo "$NAME" > "$p/scenario-name"
# XEN_LAB_ENV="VAR=value ...": variables for the scenario in dom0.
printf '%s\n' ${XEN_LAB_ENV:-} > "$p/scenario-env"
if [ -x "$BUILD/remus" ]; then cp "$BUILD/remus" "$p/remus"; fi
for t in xen_m2p_find xen_pv_frame xen_grow_p2m xen_p2m_gen; do [ ! -x "$BUILD/tests/$t" ] || cp "$BUILD/tests/$t" "$p/"; done
[ ! -x "$BUILD/bench/xen_pause_watch" ] || cp "$BUILD/bench/xen_pause_watch" "$p/"   # xenremusbench
cp "$CACHE/guest-vmlinuz" "$p/guest-vmlinuz"
cp "$CACHE/guest.cpio.gz" "$p/guest.cpio.gz"
cp "$HERE/guest.cfg" "$HERE/guest-net.cfg" "$HERE/guest-2vif.cfg" "$HERE/vif-lab" \
   "$HERE/vbd-lab" "$HERE/pvtypes.py" "$HERE/xlfile.py" \
   "$HERE/scenario-lib.sh" "$HERE/guest-watch.sh" "$p/"
cp "$ROOT/tests/support/plug_steps.sh" "$p/"   # the plug test of netbuf_plug.sh
cp "$ROOT/tests/lib/cluster.sh" "$ROOT/tests/lib/wait.sh" "$p/"   # xenquorum
# xenocf: the agent and the OCF shell library it sources (resource-agents,
# installed on this host by `make deps`)
mkdir -p "$p/ocf/resource.d/remus" "$p/ocf/lib/heartbeat"
cp "$ROOT/ocf/remus" "$p/ocf/resource.d/remus/remus"
cp /usr/lib/ocf/lib/heartbeat/ocf-* "$p/ocf/lib/heartbeat/"
(cd "$WORK/payload" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/payload.cpio.gz"
cat "$CACHE/dom0.cpio.gz" "$WORK/payload.cpio.gz" > "$WORK/initrd.gz"

# Boot Xen + dom0 and run the scenario once; results into $OUT.
boot_and_run() {
    rm -rf "$OUT"; mkdir -p "$OUT"
    rm -f "$WORK/results.img"; truncate -s 256M "$WORK/results.img"
    echo "xen-lab: booting Xen + dom0 for scenario $NAME (TCG: slow)"
    local t0 rc=0 keys
    t0=$(date +%s)
    # QEMU's stdin, Xen's serial input: when the scenario hangs (its
    # watchdog says so on the console) Xen is asked for its CPUs' state:
    # input switched to Xen (CTRL-a three times, each doubled for QEMU's
    # mux), then debug keys d (registers and stacks) and q (domains).
    rm -f "$WORK/keys" "$WORK/qemu-done"; mkfifo "$WORK/keys"
    (
        dumped=0
        while [ ! -f "$WORK/qemu-done" ]; do
            if [ $dumped = 0 ] && grep -q "did not end within" "$OUT/serial.log" 2>/dev/null; then
                printf '\001\001\001\001\001\001'; sleep 2; printf 'd'; sleep 20; printf 'q'
                dumped=1
            fi
            sleep 2
        done
    ) > "$WORK/keys" &
    keys=$!
    # The CPU model and TCG options: lab/xen/README.md says why these.
    timeout "${XEN_LAB_TIMEOUT:-900}" qemu-system-x86_64 -accel "tcg,${XEN_LAB_TCG:-thread=multi}" \
        -cpu "${XEN_LAB_CPU:-Opteron_G3,+svm,+npt,+nrip-save,-rdtscp}" -m 6144 -smp "${XEN_LAB_SMP:-2}" \
        -nographic -no-reboot -kernel "$CACHE/xen.bin" \
        -append "dom0_mem=3072M,max:3072M console=com1 com1=115200,8n1 console_timestamps=boot loglvl=all guest_loglvl=all" \
        -initrd "$CACHE/vmlinuz console=hvc0 earlyprintk=xen rdinit=/init,$WORK/initrd.gz" \
        -drive "file=$WORK/results.img,format=raw,if=virtio" \
        > "$OUT/serial.log" 2>&1 < "$WORK/keys" || rc=$?
    touch "$WORK/qemu-done"; wait $keys 2>/dev/null || true
    echo "xen-lab: QEMU ended (exit $rc) after $(( $(date +%s) - t0 )) s"
    tar -xf "$WORK/results.img" -C "$OUT" 2>/dev/null || true
}

# Nested SVM under TCG sometimes kills a guest on its own (README.md).  A
# failed try is retried (at most XEN_LAB_RETRIES times) when guest-died.sh
# finds that the guest under test died before any operation of ours on it.
# A death that may be ours (after an operation on it began, or of a domain
# the scenario did not announce) is retried at most XEN_LAB_RETRY_OURS
# times (default 1; 0: never), loudly: "RETRIED: MAY BE OURS: ...", the
# failed try kept with the dead domain's registers (guest-watch.sh), so
# that every such death stays visible and can be told apart later.
RETRY_OURS=${XEN_LAB_RETRY_OURS:-1}
boot_and_run
retried=()
own=0; ours=0; try=0
while [ -f "$OUT/scenario.rc" ] && [ "$(cat "$OUT/scenario.rc")" != 0 ]; do
    grc=0; why=$("$HERE/guest-died.sh" "$OUT") || grc=$?
    if [ $grc = 3 ]; then
        echo "xen-lab: a guest died, and it may be our doing:"
        echo "$why" | sed 's/^/xen-lab:   /'
        if [ $ours -ge "$RETRY_OURS" ]; then
            echo "xen-lab: not retried (XEN_LAB_RETRY_OURS=$RETRY_OURS, $ours retried)"
            break
        fi
        ours=$((ours + 1))
        # (the first line by expansion: `echo | head -1` could die of
        # SIGPIPE under pipefail, and did once in CI)
        first=${why%%$'\n'*}
        reason="MAY BE OURS: ${first#may be ours: }"
    elif [ $grc = 0 ]; then
        [ $own -lt "$RETRIES" ] || break
        own=$((own + 1))
        echo "xen-lab: the scenario failed and its guest died on its own (not remus):"
        echo "$why" | sed 's/^/xen-lab:   /'
        reason=${why%%$'\n'*}
    else
        break
    fi
    try=$((try + 1))
    rm -rf "$OUT.try-$try"; mv "$OUT" "$OUT.try-$try"
    echo "xen-lab: retrying $NAME (the failed try $try is kept in $OUT.try-$try)"
    retried+=("$reason; failed try kept in $OUT.try-$try")
    boot_and_run
done
if [ ! -f "$OUT/scenario.rc" ]; then
    echo "xen-lab: no results came back; the end of the serial log:"
    tail -40 "$OUT/serial.log"
    exit 1
fi
src=$(cat "$OUT/scenario.rc")
echo "xen-lab: scenario $NAME exit $src; log: $OUT/scenario.log"
tail -20 "$OUT/scenario.log"
if [ "$src" = 0 ]; then
    for r in "${retried[@]}"; do echo "RETRIED: $r"; done
elif [ ${#retried[@]} -gt 0 ]; then
    echo "xen-lab: $NAME failed after ${#retried[@]} retries; the failed tries are kept in $OUT.try-*"
fi
exit "$src"
