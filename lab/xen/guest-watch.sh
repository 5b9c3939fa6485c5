#!/bin/sh
# lab/xen/guest-watch.sh [ROUNDS]: runs in dom0 beside a lab scenario
# (run-scenario.sh starts it) and reports each domain it sees crashed:
# a guest whose kernel panics shuts itself down as crashed, and Xen prints
# nothing about it, so guest-died.sh would not see that death.  Every 2 s
# (ROUNDS times; default: until killed) `xl list`; a domain in state c
# (crashed; the lab's guests preserve a crashed domain) is reported once
# on the console as "lab-mark: crashed DOMID NAME: <its console's last
# panic line>", in order with Xen's messages and the scenario's markers.
# Each domain seen dead (crashed, or shut down: a triple fault is a
# reboot, which the guests preserve) also has its vCPU state written to
# $LAB_DEAD_DIR/dead-DOMID.txt (default /results, where the scenario's log
# goes): `xen-hvmctx` (registers, MSRs such as the kernel's GS base) and
# `xenctx` (the stack), so that a death can be told from its registers.
# A guest under test (announced in $LAB_MARKS, default /tmp/lab-marks,
# by scenario-lib.sh) that Xen reports dead (a triple fault, a crash) or
# that crashed, when no operation of ours on it (or on all domains) has
# begun, or whose vCPU holds Xen's own state, died of the lab: the try
# cannot pass, so it is stopped at once rather than left to run into its
# timeouts (minutes each under TCG): "lab-mark: abort: ..." on the
# console, and $LAB_ABORT (default /tmp/lab-abort) created, which
# run-scenario.sh's wrapper watches.  guest-died.sh still judges the try
# on the host from the serial log, as for any failure.
# $XEN_BIN (default /usr/lib/xen-4.17/bin), $LAB_CONSOLE (default /dev/console) and $XEN_CONSOLE_LOGS (default
# /var/log/xen/console) for tests.
. "$(dirname "$0")/scenario-lib.sh"   # xen_death_line
rounds=${1:-0}
seen=" "
dumped=" "
n=0
xenbin=${XEN_BIN:-/usr/lib/xen-4.17/bin}
dump_dead() {   # DOMID NAME STATE
    dir=${LAB_DEAD_DIR:-/results}
    [ -d "$dir" ] && [ -x "$xenbin/xen-hvmctx" ] || return 0
    {
        echo "domain $1 ($2), state $3, seen dead at $(cat /proc/uptime)"
        echo "== xen-hvmctx $1"; "$xenbin/xen-hvmctx" "$1" 2>&1 | head -400
        echo "== xenctx -a -S $1"; "$xenbin/xenctx" -a -S "$1" 2>&1 | head -200
    } > "$dir/dead-$1.txt" 2>&1
}
# lab_death DOMID NAME STATE XEN-LINE: stop the scenario if the domain, a
# guest under test, died of the lab (above); XEN-LINE is Xen's message of
# its death, empty if none.
aborted=0
lab_death() {
    marks=${LAB_MARKS:-/tmp/lab-marks}
    [ $aborted = 0 ] && grep -q "^guest $1 " "$marks" 2>/dev/null || return 0
    line=$4
    case "$3" in *c*) [ -n "$line" ] || line="crashed" ;; esac
    [ -n "$line" ] || return 0    # shut down for a checkpoint, not dead
    f=${LAB_DEAD_DIR:-/results}/dead-$1.txt
    if grep -q "^ *cs 0xe008 " "$f" 2>/dev/null && grep -q "^ *rip 0xffff82d0" "$f" 2>/dev/null; then
        why="its vCPU holds Xen's own state"
    elif awk -v d="$1" '$1 == "begin" { for (i = 2; i <= NF && $i != ":"; i++) if ($i == d || $i == "all") b = 1 } END { exit !b }' "$marks"; then
        return 0                  # after an operation of ours: may be ours
    else
        why="before any operation of ours on it"
    fi
    aborted=1
    printf '\nlab-mark: abort: domain %s (%s) died of the lab, %s (%s): the scenario is stopped\n' \
        "$1" "$2" "$why" "$line" >> "${LAB_CONSOLE:-/dev/console}"
    : > "${LAB_ABORT:-/tmp/lab-abort}"
}
while :; do
    for dsn in $(xl list 2>/dev/null | awk 'NR > 1 && $5 ~ /[sc]/ {print $2 ":" $5 ":" $1}'); do
        d=${dsn%%:*}; state=${dsn#*:}; state=${state%%:*}; name=${dsn#*:*:}
        # Xen's word of its death, if any (a domain shut down for a
        # checkpoint has none): a dump taken before it (at a checkpoint) is
        # taken again, once, so that it shows the vCPU the domain died with
        line=$(xen_death_line "$d")
        case "$dumped" in
            *" $d! "*) ;;
            *" $d "*) [ -z "$line" ] || { dumped="$dumped$d! "; dump_dead "$d" "$name" "$state"; } ;;
            *) dumped="$dumped$d "; [ -z "$line" ] || dumped="$dumped$d! "; dump_dead "$d" "$name" "$state" ;;
        esac
        lab_death "$d" "$name" "$state" "$line"
        case "$state" in *c*) ;; *) continue ;; esac
        case "$seen" in *" $d "*) continue ;; esac
        seen="$seen$d "
        # its console log is named after the domain's name when xenconsoled
        # first saw it: after a migration, NAME--incoming for a NAME now
        c=${XEN_CONSOLE_LOGS:-/var/log/xen/console}
        log=$(ls -t "$c/guest-$name.log" "$c/guest-$name--"*.log 2>/dev/null | head -1)
        why=$(grep -aE "Kernel panic|BUG:|Oops" "$log" 2>/dev/null | tail -1)
        printf '\nlab-mark: crashed %s %s: %s\n' "$d" "$name" "${why:-no panic line on its console}" >> "${LAB_CONSOLE:-/dev/console}"
    done
    n=$((n + 1))
    [ "$rounds" = 0 ] || [ $n -lt "$rounds" ] || exit 0
    sleep 2
done
