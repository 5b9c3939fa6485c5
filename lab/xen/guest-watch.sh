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
# $XEN_BIN (default /usr/lib/xen-4.17/bin), $LAB_CONSOLE (default /dev/console) and $XEN_CONSOLE_LOGS (default
# /var/log/xen/console) for tests.
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
while :; do
    for dsn in $(xl list 2>/dev/null | awk 'NR > 1 && $5 ~ /[sc]/ {print $2 ":" $5 ":" $1}'); do
        d=${dsn%%:*}; state=${dsn#*:}; state=${state%%:*}; name=${dsn#*:*:}
        case "$dumped" in *" $d "*) ;; *) dumped="$dumped$d "; dump_dead "$d" "$name" "$state" ;; esac
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
