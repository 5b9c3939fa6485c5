#!/bin/sh
# lab/xen/warmup.sh: runs in dom0 before a scenario started from the saved
# dom0 when XEN_LAB_WARMUP=1 (run-scenario.sh's wrapper; off by default).
# With QEMU given 6 GiB, the first guest booted after QEMU restored the
# saved state died at boot in 4 of 6 starts measured here on 2026-12-03
# (`scenarios/bootchurn.sh`: a triple fault in its first seconds, with
# Xen's own state or a page fault pending on a fetch of its own kernel
# text), the guests booted after it rarely; with a warm-up guest first, 0
# of 9.  With all memory below 4 GiB (the lab's default since; README,
# "No memory above 4 GiB") the first guest died in 0 of 2 starts, a later
# one in 1 of 4: no longer the first one's hazard, so the warm-up is off.
# When on, a throwaway guest takes that first boot: created
# paused, announced as "lab-mark: warmup DOMID NAME" (guest-died.sh
# leaves a warm-up guest's death out of its verdict: nothing of the
# scenario ran on it), run until it counts to 2, then destroyed; one that
# dies is followed by a second.  Says what happened on its stdout (the
# scenario's log); never fails the scenario.
. ./scenario-lib.sh
log=/var/log/xen/console/guest-labwarmup.log
sed -e 's/^name = .*/name = "labwarmup"/' ./guest.cfg > /tmp/warmup.cfg
for try in 1 2; do
    t0=$(date +%s)
    : > "$log"
    if ! xl create -p /tmp/warmup.cfg > /tmp/warmup.log 2>&1; then
        echo "lab: warm-up guest not created: $(tail -1 /tmp/warmup.log)"
        exit 0
    fi
    d=$(xl domid labwarmup)
    lab_mark "warmup $d labwarmup"
    xl unpause labwarmup
    ok=0
    for _i in $(seq 1 60); do
        if grep -q "guest: counter 2 " "$log" 2>/dev/null; then ok=1; break; fi
        case "$(xl list labwarmup 2>/dev/null | awk 'NR == 2 {print $5}')" in
            *s*|*c*|"") break ;;
        esac
        sleep 1
    done
    why=$(xen_death_line "$d")
    xl destroy labwarmup 2>/dev/null
    if [ $ok = 1 ]; then
        echo "lab: warm-up guest (domain $d) counted to 2 in $(( $(date +%s) - t0 )) s, destroyed"
        exit 0
    fi
    echo "lab: warm-up guest (domain $d) did not count to 2 in $(( $(date +%s) - t0 )) s${why:+: $why}"
done
exit 0
