#!/usr/bin/env bash
# lab/xen/run-scenario.sh's retries, without Xen: a stand-in
# qemu-system-x86_64 "boots" by writing a serial log and a results disk
# (scenario.rc) from a plan, one line per boot.
#  - a failed try whose guest died on its own before any operation is run
#    again; a pass then prints "RETRIED: <reason>; failed try kept in DIR"
#    and the failed try's logs are there;
#  - a failed try whose guest died after an operation of ours on it began,
#    or whose dead domain is not the guest under test, may be ours: it is
#    retried at most XEN_LAB_RETRY_OURS times (default 1), reported as
#    "RETRIED: MAY BE OURS: ..."; with XEN_LAB_RETRY_OURS=0 never (the
#    scenario fails, no RETRIED line);
#  - at most XEN_LAB_RETRIES retries; a pass with no retry prints none;
#  - a boot that never reaches the scenario is stopped by its watchdog
#    and retried as the lab's own failure.
set -uo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d /tmp/remus-xenlab-retry.XXXXXX)
trap 'rm -rf "$T"' EXIT
HERE="$ROOT/lab/xen"

# A cached "image" under the key run-scenario.sh computes.
KEY=$("$HERE/build-image.sh" --key)
mkdir -p "$T/cache/$KEY" "$T/bin" "$T/build"
for f in xen.bin vmlinuz dom0.cpio.gz guest.cpio.gz guest-vmlinuz; do echo x > "$T/cache/$KEY/$f"; done
touch "$T/cache/$KEY/done"

# The stand-in QEMU: takes the first line of $PLAN ("RC SERIAL-FIXTURE"),
# prints the fixture as the serial console, writes scenario.rc on the
# results disk (the first -drive).  Started with -qmp it is the boot that
# saves dom0: "snap FIXTURE" serves QMP like QEMU (the migration writes
# "saved dom0" through the exec: command), "snapstall FIXTURE" never
# gets there.  Started with -incoming it refuses a state that is not the
# saved one.
cat > "$T/bin/qemu-system-x86_64" <<'EOF'
#!/usr/bin/env bash
set -eu
[ "${1:-}" != --version ] || { echo "QEMU emulator version 0 (the lab's stand-in)"; exit 0; }
disk="" qmp="" incoming="" prev=""
for a in "$@"; do
    case "$a" in file=*) [ -n "$disk" ] || { disk=${a#file=}; disk=${disk%%,*}; } ;; esac
    [ "$prev" != -qmp ] || { qmp=${a#unix:}; qmp=${qmp%%,*}; }
    [ "$prev" != -incoming ] || incoming=$a
    prev=$a
done
read -r rc fixture < "$PLAN"
sed -i 1d "$PLAN"
if [ -n "$qmp" ]; then
    [ "$rc" = snap ] || { cat "$fixture"; exec sleep 600; }
    exec python3 - "$qmp" "$fixture" <<'PY'
import json, socket, subprocess, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(1)
sys.stdout.write(open(sys.argv[2]).read()); sys.stdout.flush()
c, _ = s.accept()
f = c.makefile("rw")
f.write('{"QMP": {}}\n'); f.flush()
for line in f:
    cmd = json.loads(line)["execute"]
    ret = {}
    if cmd == "migrate":
        uri = json.loads(line)["arguments"]["uri"]
        subprocess.run(["sh", "-c", uri[len("exec:"):]], input=b"saved dom0\n", check=True)
    elif cmd == "query-migrate":
        ret = {"status": "completed", "ram": {"transferred": 11}}
    f.write(json.dumps({"return": ret}) + "\n"); f.flush()
    if cmd == "quit":
        break
PY
fi
if [ -n "$incoming" ]; then
    [ "$(sh -c "${incoming#exec:}")" = "saved dom0" ] || { echo "stand-in: no saved dom0 in $incoming"; exit 1; }
fi
cat "$fixture"
# "stall": a boot that never reaches the scenario (killed by the watchdog);
# "slow": one that reaches it, then takes a while.
[ "$rc" != stall ] || exec sleep 600
[ "$rc" != slow ] || { sleep 6; rc=0; }
d=$(mktemp -d); echo "$rc" > "$d/scenario.rc"; echo "the scenario's log (rc $rc)" > "$d/scenario.log"
tar -cf "$disk" -C "$d" . ; rm -rf "$d"
EOF
chmod +x "$T/bin/qemu-system-x86_64"

cat > "$T/own.serial" <<'EOF'
(XEN) [    4.000000] Xen is up
lab-mark: guest 1 labguest
(XEN) [   40.000000] d1v0 Triple fault - invoking HVM shutdown action 1
EOF
cat > "$T/ours.serial" <<'EOF'
lab-mark: guest 1 labguest
lab-mark: begin 1 : /payload/remus -v save --xen labguest /tmp/guest.rms
(XEN) [   40.000000] d1v0 Triple fault - invoking HVM shutdown action 1
EOF
cat > "$T/replica.serial" <<'EOF'
lab-mark: guest 1 labguest
(XEN) [   41.000000] Domain 2 (vcpu#0) crashed on cpu#1:
EOF
echo "lab-mark: guest 1 labguest" > "$T/clean.serial"

# lab PLAN-LINES...: run the smoke scenario against the plan; output in
# $T/out.log, exit in $rc.
lab() {
    printf '%s\n' "$@" > "$T/plan"
    rc=0
    PATH="$T/bin:$PATH" PLAN="$T/plan" XEN_LAB_CACHE="$T/cache" XEN_LAB_OUT="$T/res" \
        XEN_LAB_SNAPSHOT=${XEN_LAB_SNAPSHOT:-0} \
        "$HERE/run-scenario.sh" smoke "$T/build" > "$T/out.log" 2>&1 || rc=$?
}

# 1. own death, then a pass: retried, reported, the failed try kept.
lab "1 $T/own.serial" "0 $T/clean.serial"
[ "$rc" = 0 ] || { cat "$T/out.log"; echo "a pass after a retry exits $rc"; exit 1; }
n=$(grep -c "^RETRIED: " "$T/out.log")
[ "$n" = 1 ] || { cat "$T/out.log"; echo "$n RETRIED lines, not 1"; exit 1; }
grep -q "^RETRIED: domain 1 (labguest) died on its own .*d1v0 Triple fault.*; failed try kept in $T/res/smoke.try-1$" "$T/out.log" ||
    { cat "$T/out.log"; echo "the RETRIED line does not give the reason and the kept try"; exit 1; }
grep -q "d1v0 Triple fault" "$T/res/smoke.try-1/serial.log" || { echo "the failed try's serial log was not kept"; exit 1; }
[ "$(cat "$T/res/smoke.try-1/scenario.rc")" = 1 ] || { echo "the failed try's results were not kept"; exit 1; }
[ "$(cat "$T/res/smoke/scenario.rc")" = 0 ] || { echo "the last try's results are not in place"; exit 1; }

# 2. a death after an operation on the guest may be ours: retried once,
#    loudly; a second such death fails; with XEN_LAB_RETRY_OURS=0, never.
lab "1 $T/ours.serial" "0 $T/clean.serial"
[ "$rc" = 0 ] || { cat "$T/out.log"; echo "a death that may be ours was not retried once (exit $rc)"; exit 1; }
grep -q "^RETRIED: MAY BE OURS: domain 1 (labguest) died after \"/payload/remus -v save --xen labguest /tmp/guest.rms\" on it began: .*; failed try kept in $T/res/smoke.try-1$" "$T/out.log" ||
    { cat "$T/out.log"; echo "the retry of a death that may be ours is not reported as such"; exit 1; }
lab "1 $T/ours.serial" "1 $T/ours.serial" "0 $T/clean.serial"
[ "$rc" = 1 ] || { cat "$T/out.log"; echo "a second death that may be ours was retried (exit $rc)"; exit 1; }
if grep -q "^RETRIED" "$T/out.log"; then cat "$T/out.log"; echo "RETRIED printed for a failure"; exit 1; fi
grep -q "not retried (XEN_LAB_RETRY_OURS=1, 1 retried)" "$T/out.log" || { cat "$T/out.log"; echo "the refused second retry is not said"; exit 1; }
XEN_LAB_RETRY_OURS=0 lab "1 $T/ours.serial" "0 $T/clean.serial"
[ "$rc" = 1 ] || { cat "$T/out.log"; echo "XEN_LAB_RETRY_OURS=0 retried a death after an operation (exit $rc)"; exit 1; }
if grep -q "^RETRIED" "$T/out.log"; then cat "$T/out.log"; echo "RETRIED printed for an unretried failure"; exit 1; fi
grep -q "may be our doing" "$T/out.log" || { cat "$T/out.log"; echo "the possibly-ours death is not shown"; exit 1; }
[ ! -e "$T/res/smoke.try-1" ] || { echo "a stale try of the previous run is left"; exit 1; }

# 3. the dead domain is not the guest under test: may be ours, the same.
XEN_LAB_RETRY_OURS=0 lab "1 $T/replica.serial" "0 $T/clean.serial"
[ "$rc" = 1 ] || { cat "$T/out.log"; echo "another domain's death was retried with XEN_LAB_RETRY_OURS=0 (exit $rc)"; exit 1; }
lab "1 $T/replica.serial" "0 $T/clean.serial"
grep -q "^RETRIED: MAY BE OURS: domain 2 is not a guest under test" "$T/out.log" ||
    { cat "$T/out.log"; echo "another domain's death was not retried as one that may be ours"; exit 1; }

# 3b. an own death and one that may be ours each have their own count.
lab "1 $T/own.serial" "1 $T/ours.serial" "0 $T/clean.serial"
[ "$rc" = 0 ] || { cat "$T/out.log"; echo "an own death then one that may be ours did not pass on the third try (exit $rc)"; exit 1; }
n=$(grep -c "^RETRIED: " "$T/out.log")
[ "$n" = 2 ] || { cat "$T/out.log"; echo "$n RETRIED lines, not 2"; exit 1; }

# 4. two own deaths with one retry allowed (XEN_LAB_RETRIES=1): fails, no
#    RETRIED line; by default (3) it passes with three; four fail.
XEN_LAB_RETRIES=1 lab "1 $T/own.serial" "1 $T/own.serial" "0 $T/clean.serial"
[ "$rc" = 1 ] || { cat "$T/out.log"; echo "more retries than XEN_LAB_RETRIES (exit $rc)"; exit 1; }
if grep -q "^RETRIED" "$T/out.log"; then cat "$T/out.log"; echo "RETRIED printed for a failure"; exit 1; fi
grep -q "failed after 1 retries" "$T/out.log" || { cat "$T/out.log"; echo "the exhausted retries are not said"; exit 1; }
lab "1 $T/own.serial" "1 $T/own.serial" "1 $T/own.serial" "0 $T/clean.serial"
[ "$rc" = 0 ] || { cat "$T/out.log"; echo "the default did not retry three own deaths (exit $rc)"; exit 1; }
n=$(grep -c "^RETRIED: " "$T/out.log")
[ "$n" = 3 ] || { cat "$T/out.log"; echo "$n RETRIED lines after three retries"; exit 1; }
lab "1 $T/own.serial" "1 $T/own.serial" "1 $T/own.serial" "1 $T/own.serial" "0 $T/clean.serial"
[ "$rc" = 1 ] || { cat "$T/out.log"; echo "four own deaths passed with the default's three retries (exit $rc)"; exit 1; }

# 5. a boot that stalls before the scenario began is stopped by the
#    boot watchdog (XEN_LAB_BOOT_TIMEOUT), not at XEN_LAB_TIMEOUT, and
#    retried as the lab's own failure; a scenario that outlives the boot
#    timeout after it began is not stopped; stalls past the retries fail.
echo "[   15.901714] sched_clock: Marking stable (15716311221, 182193251)" > "$T/stall.serial"
printf '%s\n' "lab: dom0 up" "lab: running scenario smoke" > "$T/booted.serial"
t0=$(date +%s)
XEN_LAB_BOOT_TIMEOUT=3 lab "stall $T/stall.serial" "0 $T/booted.serial"
[ "$rc" = 0 ] || { cat "$T/out.log"; echo "a stalled boot then a pass exits $rc"; exit 1; }
[ $(( $(date +%s) - t0 )) -lt 60 ] || { cat "$T/out.log"; echo "the stalled boot was not stopped by its watchdog"; exit 1; }
grep -q "^RETRIED: dom0's boot stalled before the scenario began, no remus code had run (the serial log's last line: .*Marking stable.*); failed try kept in $T/res/smoke.try-1$" "$T/out.log" ||
    { cat "$T/out.log"; echo "the stalled boot's retry is not reported with its reason"; exit 1; }
grep -q "Marking stable" "$T/res/smoke.try-1/serial.log" || { echo "the stalled boot's serial log was not kept"; exit 1; }
XEN_LAB_BOOT_TIMEOUT=3 lab "slow $T/booted.serial"
[ "$rc" = 0 ] || { cat "$T/out.log"; echo "a scenario running past the boot timeout was stopped (exit $rc)"; exit 1; }
if grep -q "^RETRIED" "$T/out.log"; then cat "$T/out.log"; echo "a booted scenario was retried"; exit 1; fi
XEN_LAB_BOOT_TIMEOUT=3 lab "stall $T/stall.serial" "stall $T/stall.serial" "stall $T/stall.serial" "stall $T/stall.serial" "0 $T/booted.serial"
[ "$rc" = 1 ] || { cat "$T/out.log"; echo "four stalled boots did not fail (exit $rc)"; exit 1; }
grep -q "no results came back" "$T/out.log" || { cat "$T/out.log"; echo "the last stalled boot is not shown"; exit 1; }

# 6. the saved dom0 (XEN_LAB_SNAPSHOT=1, the default): made once by a
#    boot up to its wait for a payload, then every scenario starts from
#    it; a boot that does not get there is tried again, 3 tries in all.
printf '%s\n' "lab: dom0 up" "lab: waiting for a payload on /dev/vdb" > "$T/waiting.serial"
export XEN_LAB_SNAPSHOT=1
XEN_LAB_BOOT_TIMEOUT=3 lab "snapstall $T/stall.serial" "snap $T/waiting.serial" "0 $T/booted.serial"
[ "$rc" = 0 ] || { cat "$T/out.log"; echo "a stalled boot to save, then a saved dom0 and a pass, exits $rc"; exit 1; }
grep -q "did not reach its wait for a payload within 3 s (its last line: .*Marking stable" "$T/out.log" ||
    { cat "$T/out.log"; echo "the stalled boot to save is not said"; exit 1; }
grep -q "dom0 saved after" "$T/out.log" && grep -q "starting the saved dom0 for scenario smoke" "$T/out.log" ||
    { cat "$T/out.log"; echo "the scenario did not start from the saved dom0"; exit 1; }
ls "$T/cache/$KEY"/dom0-waiting-*.state > /dev/null || { echo "the saved dom0 is not in the cache"; exit 1; }
lab "0 $T/booted.serial"
[ "$rc" = 0 ] || { cat "$T/out.log"; echo "a start from the cached saved dom0 exits $rc"; exit 1; }
if grep -q "booting Xen + dom0" "$T/out.log"; then cat "$T/out.log"; echo "dom0 booted again though it was saved"; exit 1; fi
rm -f "$T/cache/$KEY"/dom0-waiting-*
XEN_LAB_BOOT_TIMEOUT=2 lab "snapstall $T/stall.serial" "snapstall $T/stall.serial" "snapstall $T/stall.serial" "0 $T/booted.serial"
[ "$rc" = 1 ] || { cat "$T/out.log"; echo "three boots that could not be saved did not fail (exit $rc)"; exit 1; }
grep -q "dom0 could not be booted and saved in 3 tries" "$T/out.log" || { cat "$T/out.log"; echo "the failure to save dom0 is not said"; exit 1; }
unset XEN_LAB_SNAPSHOT

# 7. a plain pass: no RETRIED line.
lab "0 $T/clean.serial"
[ "$rc" = 0 ] || { cat "$T/out.log"; echo "a plain pass exits $rc"; exit 1; }
if grep -q "^RETRIED" "$T/out.log"; then cat "$T/out.log"; echo "RETRIED printed without a retry"; exit 1; fi
echo "xen_lab_retry: a guest's own death is retried, one that may be ours once and loudly, each retry reported with its kept try"
