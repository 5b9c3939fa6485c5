#!/bin/sh
# lab/xen/guest-watch.sh [ROUNDS]: runs in dom0 beside a lab scenario
# (run-scenario.sh starts it) and reports each domain it sees crashed:
# a guest whose kernel panics shuts itself down as crashed, and Xen prints
# nothing about it, so guest-died.sh would not see that death.  Every 2 s
# (ROUNDS times; default: until killed) `xl list`; a domain in state c
# (crashed; the lab's guests preserve a crashed domain) is reported once
# on the console as "lab-mark: crashed DOMID NAME: <its console's last
# panic line>", in order with Xen's messages and the scenario's markers.
# $LAB_CONSOLE (default /dev/console) and $XEN_CONSOLE_LOGS (default
# /var/log/xen/console) for tests.
rounds=${1:-0}
seen=" "
n=0
while :; do
    for dn in $(xl list 2>/dev/null | awk 'NR > 1 && $5 ~ /c/ {print $2 ":" $1}'); do
        d=${dn%%:*}; name=${dn#*:}
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
