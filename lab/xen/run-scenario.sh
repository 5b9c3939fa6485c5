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
# is run again, at most XEN_LAB_RETRIES times (default 3), and one whose
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
KEY=$("$HERE/build-image.sh" --key)
CACHE="$CACHE_ROOT/$KEY"
OUT=${XEN_LAB_OUT:-$ROOT/build/xen-lab}/$NAME
RETRIES=${XEN_LAB_RETRIES:-3}
rm -rf "$OUT".try-*   # a previous run's failed tries
WORK=$(mktemp -d /tmp/remus-xenlab.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# The payload: a tar on dom0's second disk (payload.img; rootfs/init).
p="$WORK/payload/payload"
mkdir -p "$p"
# The scenario runs under a deadline (so that its log comes back even when
# it hangs) and its output is copied to dom0's console as it runs (so that
# serial.log shows how far it got); guest-watch.sh reports crashed guests
# there too.
cp "$SCEN" "$p/scenario-body.sh"; chmod +x "$p/scenario-body.sh"
DEADLINE=$(( ${XEN_LAB_TIMEOUT:-900} - 180 ))
# XEN_LAB_WARMUP=1: from the saved dom0, a throwaway guest boots first
# (warmup.sh says when that helped, and why it is off by default).
WARMUP=0
[ "${XEN_LAB_SNAPSHOT:-1}" = 0 ] || WARMUP=${XEN_LAB_WARMUP:-0}
cat > "$p/scenario.sh" <<EOS
#!/bin/sh
tail -n +1 -f /results/scenario.log 2>/dev/null | sed 's/^/scenario: /' > /dev/console &
./guest-watch.sh &
set -a; . ./scenario-env; set +a
[ $WARMUP = 0 ] || ./warmup.sh
./scenario-body.sh &
body=\$!
# guest-watch.sh found the guest under test dead of the lab: stop now
( while kill -0 \$body 2>/dev/null; do
      [ ! -e /tmp/lab-abort ] || { kill -KILL \$body; exit 0; }
      sleep 1
  done ) &
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
   "$HERE/scenario-lib.sh" "$HERE/guest-watch.sh" "$HERE/warmup.sh" "$p/"
cp "$ROOT/tests/support/plug_steps.sh" "$p/"   # the plug test of netbuf_plug.sh
cp "$ROOT/tests/lib/cluster.sh" "$ROOT/tests/lib/wait.sh" "$p/"   # xenquorum
# xenocf: the agent and the OCF shell library it sources (resource-agents,
# installed on this host by `make deps`)
mkdir -p "$p/ocf/resource.d/remus" "$p/ocf/lib/heartbeat"
cp "$ROOT/ocf/remus" "$p/ocf/resource.d/remus/remus"
cp /usr/lib/ocf/lib/heartbeat/ocf-* "$p/ocf/lib/heartbeat/"
# payload.img: a header block ("remus-lab-payload EPOCH"), 4 KiB of
# random bytes for dom0's pool (every scenario starts from the same saved
# dom0), the tar from 8 KiB on.  The two disks' sizes are fixed: the
# saved dom0 saw them at boot, and every start from it must give the same.
PAYLOAD_MIB=256
RESULTS_MIB=256
truncate -s "${PAYLOAD_MIB}M" "$WORK/payload.img"
tar -cf "$WORK/payload.tar" -C "$WORK/payload" payload
[ "$(stat -c %s "$WORK/payload.tar")" -lt $(( (PAYLOAD_MIB << 20) - 8192 )) ] ||
    { echo "xen-lab: the payload ($(stat -c %s "$WORK/payload.tar") bytes) does not fit its ${PAYLOAD_MIB} MiB disk"; exit 2; }
printf 'remus-lab-payload %s\n' "$(date +%s)" | dd of="$WORK/payload.img" conv=notrunc status=none
head -c 4096 /dev/urandom | dd of="$WORK/payload.img" bs=4096 seek=1 conv=notrunc status=none
dd if="$WORK/payload.tar" of="$WORK/payload.img" bs=4096 seek=2 conv=notrunc status=none
rm -f "$WORK/payload.tar"

# The machine: the same options for the saved dom0 and for every start
# from it (a state restores only into the same machine; the disks and
# the QMP socket are given per start).  The CPU model and TCG options:
# lab/xen/README.md says why these.
QEMU_MACHINE=(-accel "tcg,${XEN_LAB_TCG:-thread=multi}"
    -cpu "${XEN_LAB_CPU:-Opteron_G3,+svm,+npt,+nrip-save,-rdtscp}" -m "${XEN_LAB_MEM:-3072}" -smp "${XEN_LAB_SMP:-2}"
    -nographic -no-reboot -kernel "$CACHE/xen.bin"
    -append "dom0_mem=${XEN_LAB_DOM0_MEM:-2048M},max:${XEN_LAB_DOM0_MEM:-2048M} console=com1 com1=115200,8n1 console_timestamps=boot loglvl=all guest_loglvl=all"
    -initrd "$CACHE/vmlinuz console=hvc0 earlyprintk=xen rdinit=/init,$CACHE/dom0.cpio.gz")
qemu_disks() {   # RESULTS-IMG PAYLOAD-IMG: the two disks, into DISKS
    DISKS=(-drive "file=$1,format=raw,if=virtio" -drive "file=$2,format=raw,if=virtio")
}

# The saved dom0 (XEN_LAB_SNAPSHOT=1, the default): Xen and dom0 booted
# once, up to rootfs/init's wait for its payload, and QEMU's whole state
# saved there (qmp-save.py) in $CACHE, keyed by QEMU's version and the
# machine's options; each scenario starts from it in seconds instead of a
# 20-40 s boot.  Made under a lock (one maker at a time); a boot that does
# not reach the wait within XEN_LAB_BOOT_TIMEOUT is tried again, at most 3
# times in all.  XEN_LAB_SNAPSHOT=0: every scenario boots Xen and dom0.
SNAP=
if [ "${XEN_LAB_SNAPSHOT:-1}" != 0 ]; then
    skey=$( { qemu-system-x86_64 --version | head -1; printf '%s\n' "${QEMU_MACHINE[@]}"; } | sha256sum | cut -c1-12)
    SNAP="$CACHE/dom0-waiting-$skey.state"
    exec 9> "$CACHE/.snapshot.lock"
    flock 9
    snap_try=0
    while [ ! -s "$SNAP" ]; do
        snap_try=$((snap_try + 1))
        if [ $snap_try -gt 3 ]; then
            echo "xen-lab: dom0 could not be booted and saved in 3 tries; the last boot's serial log:"
            tail -30 "$WORK/snap-serial.log"
            exit 1
        fi
        echo "xen-lab: booting Xen + dom0 to save it for the scenarios (once per lab image; try $snap_try)"
        rm -f "$WORK/snap-results.img" "$WORK/snap-payload.img" "$WORK/snap.qmp"
        truncate -s "${RESULTS_MIB}M" "$WORK/snap-results.img"
        truncate -s "${PAYLOAD_MIB}M" "$WORK/snap-payload.img"
        t0=$(date +%s)
        qemu_disks "$WORK/snap-results.img" "$WORK/snap-payload.img"
        timeout $(( ${XEN_LAB_BOOT_TIMEOUT:-300} + 120 )) qemu-system-x86_64 "${QEMU_MACHINE[@]}" "${DISKS[@]}" \
            -qmp "unix:$WORK/snap.qmp,server=on,wait=off" \
            > "$WORK/snap-serial.log" 2>&1 < /dev/null &
        snapq=$!
        until grep -q "^lab: waiting for a payload" "$WORK/snap-serial.log" 2>/dev/null; do
            if ! kill -0 $snapq 2>/dev/null ||
               [ $(( $(date +%s) - t0 )) -ge "${XEN_LAB_BOOT_TIMEOUT:-300}" ]; then
                echo "xen-lab: dom0 did not reach its wait for a payload within ${XEN_LAB_BOOT_TIMEOUT:-300} s (its last line: $(grep -a . "$WORK/snap-serial.log" | tail -1 | tr -d '\r' | cut -c1-160))"
                kill -TERM $snapq 2>/dev/null || true
                break
            fi
            sleep 1
        done
        if grep -q "^lab: waiting for a payload" "$WORK/snap-serial.log" 2>/dev/null &&
           python3 "$HERE/qmp-save.py" "$WORK/snap.qmp" "$SNAP.tmp"; then
            wait $snapq || true
            cp "$WORK/snap-serial.log" "$SNAP.serial.log"
            mv "$SNAP.tmp" "$SNAP"
            echo "xen-lab: dom0 saved after $(( $(date +%s) - t0 )) s: $SNAP ($(( $(stat -c %s "$SNAP") >> 20 )) MiB)"
        else
            kill -TERM $snapq 2>/dev/null || true
            wait $snapq 2>/dev/null || true
            rm -f "$SNAP.tmp"
        fi
    done
    flock -u 9
    exec 9>&-
fi

# Boot Xen + dom0 and run the scenario once; results into $OUT.
boot_and_run() {
    rm -rf "$OUT"; mkdir -p "$OUT"
    rm -f "$WORK/results.img"; truncate -s "${RESULTS_MIB}M" "$WORK/results.img"
    local incoming=()
    if [ -n "$SNAP" ]; then
        echo "xen-lab: starting the saved dom0 for scenario $NAME (TCG: slow)"
        incoming=(-incoming "exec:cat $SNAP")
        cp "$SNAP.serial.log" "$OUT/boot-serial.log"   # how that dom0 booted
    else
        echo "xen-lab: booting Xen + dom0 for scenario $NAME (TCG: slow)"
    fi
    local t0 rc=0 keys
    t0=$(date +%s)
    rm -f "$WORK/keys" "$WORK/qemu-done" "$WORK/boot-stalled"; mkfifo "$WORK/keys"
    qemu_disks "$WORK/results.img" "$WORK/payload.img"
    timeout "${XEN_LAB_TIMEOUT:-900}" qemu-system-x86_64 "${QEMU_MACHINE[@]}" "${DISKS[@]}" "${incoming[@]}" \
        > "$OUT/serial.log" 2>&1 < "$WORK/keys" &
    qemu=$!
    # The boot's watchdog: dom0 must reach the scenario ("lab: running
    # scenario", rootfs/init) within XEN_LAB_BOOT_TIMEOUT s (default 300;
    # a boot takes about 40 s wall). A boot that stalls before it (seen in
    # CI on 2026-12-03: dom0's kernel silent after 15.9 s of its own
    # boot) ran nothing of remus: QEMU is stopped at once instead of at
    # XEN_LAB_TIMEOUT, and the try counts as the lab's own failure.
    # QEMU's stdin, Xen's serial input: when the scenario hangs (its
    # watchdog says so on the console) Xen is asked for its CPUs' state:
    # input switched to Xen (CTRL-a three times, each doubled for QEMU's
    # mux), then debug keys d (registers and stacks) and q (domains).
    (
        dumped=0
        while [ ! -f "$WORK/qemu-done" ]; do
            if [ ! -f "$WORK/booted" ]; then
                if grep -q "^lab: running scenario" "$OUT/serial.log" 2>/dev/null; then
                    touch "$WORK/booted"
                elif [ $(( $(date +%s) - t0 )) -ge "${XEN_LAB_BOOT_TIMEOUT:-300}" ]; then
                    touch "$WORK/boot-stalled"
                    kill -TERM "$qemu" 2>/dev/null || true
                fi
            fi
            if [ $dumped = 0 ] && grep -q "did not end within" "$OUT/serial.log" 2>/dev/null; then
                printf '\001\001\001\001\001\001'; sleep 2; printf 'd'; sleep 20; printf 'q'
                dumped=1
            fi
            sleep 2
        done
    ) > "$WORK/keys" &
    keys=$!
    wait "$qemu" || rc=$?
    touch "$WORK/qemu-done"; wait $keys 2>/dev/null || true
    rm -f "$WORK/booted"
    echo "xen-lab: QEMU ended (exit $rc) after $(( $(date +%s) - t0 )) s"
    if [ -f "$WORK/boot-stalled" ]; then
        echo "xen-lab: dom0 did not reach the scenario within ${XEN_LAB_BOOT_TIMEOUT:-300} s; QEMU stopped"
    fi
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
# A boot that stalled before the scenario began (the watchdog in
# boot_and_run) is the lab's own failure, retried like a guest's own death.
while [ -f "$WORK/boot-stalled" ] ||
      { [ -f "$OUT/scenario.rc" ] && [ "$(cat "$OUT/scenario.rc")" != 0 ]; }; do
    grc=0
    if [ -f "$WORK/boot-stalled" ]; then
        last=$(grep -a . "$OUT/serial.log" | tail -1 | tr -d '\r' | cut -c1-160) || true
        why="dom0's boot stalled before the scenario began, no remus code had run (the serial log's last line: $last)"
    else
        why=$("$HERE/guest-died.sh" "$OUT") || grc=$?
    fi
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
        echo "xen-lab: the try failed of the lab, not of remus:"
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
