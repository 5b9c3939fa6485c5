#!/bin/sh
# Not a test (not in tests/lab): how often the lab's PVH guest dies under
# checkpointing, per 100 suspends, remus against Xen's own `xl remus`, the
# guest's TSC trapped by Xen (tsc_mode "default" here) against native
# (lab/xen/README.md, "Spontaneous deaths").  One boot; rows of
# SUSPCHURN_SECS seconds (default 60) from the first checkpoint, each on
# a guest booted for it (created, counted to 4), checkpointed to
# /dev/null at SUSPCHURN_INTERVAL ms (default 200) with the output not
# held: `remus protect --xen -F -n -d -b` or `xl remus -F -n -d -b`, then
# stopped and the guest destroyed.  The rows cycle through every pair of
# SUSPCHURN_TOOLS (default "remus xl") and SUSPCHURN_TSC (default "native
# default"), SUSPCHURN_CYCLES times (default 2).  A row's guest is not
# announced (a death must not stop the count).  Per row: the checkpoints
# (remus: its stats file's lines; xl: its "Checkpointed save" lines), and
# whether the guest died (Xen's death message for its domain,
# xen_death_line, or the domain crashed); at the end, per pair: rows, checkpoints,
# deaths, deaths per 100 checkpoints (a guest that died at boot makes no
# row: counted apart).
set -e
. /payload/scenario-lib.sh
R=/payload/remus
S=${SUSPCHURN_SECS:-60}
I=${SUSPCHURN_INTERVAL:-200}
log=/var/log/xen/console/guest-labchurn.log
xl set-parameters guest_loglvl=warning   # as xenremusbench (a death still prints)
: > /tmp/churn.rows
# checkpoints TOOL: how many the row's tool has made so far
checkpoints() {
    if [ "$1" = remus ]; then cat /tmp/stats 2>/dev/null | wc -l
    else grep -c "Checkpointed save" /tmp/xlremus.log 2>/dev/null || true; fi
}
# last_words TOOL N: the last N lines of the row's tool's log (xl's
# without its debug lines)
last_words() {
    if [ "$1" = remus ]; then tail -"$2" /tmp/prot.log
    else grep -v ': debug: ' /tmp/xlremus.log | tail -"$2"; fi
}
row() {   # TOOL TSC
    sed -e 's/^name = .*/name = "labchurn"/' /payload/guest.cfg > /tmp/c.cfg
    set_tsc_mode /tmp/c.cfg "$2"
    : > $log
    xl create /tmp/c.cfg > /tmp/create.log 2>&1 || { tail -3 /tmp/create.log; return 0; }
    dom=$(xl domid labchurn)
    if ! wait_counter $log 4 90 > /dev/null; then
        echo "$1 $2 0 boot" >> /tmp/churn.rows; echo "row $1 $2: died at boot"
        xl destroy labchurn || true; return 0
    fi
    rm -f /tmp/stats /tmp/xlremus.log
    if [ "$1" = remus ]; then
        $R protect --xen -F -n -d -b -i "$I" --progress 0 --stats-file /tmp/stats labchurn > /tmp/prot.log 2>&1 &
    else
        xl -vvv remus -F -n -d -b -i "$I" labchurn dummy > /tmp/xlremus.log 2>&1 &
    fi
    tool=$!
    # the first checkpoint (xl remus first sends the whole PVH p2m: 30-60 s)
    for _i in $(seq 1 240); do
        [ "$(checkpoints "$1")" = 0 ] || break
        kill -0 $tool 2>/dev/null || break; sleep 0.5
    done
    end=$(( $(date +%s) + S ))
    while [ "$(date +%s)" -lt $end ] && kill -0 $tool 2>/dev/null; do sleep 1; done
    early=0; kill -0 $tool 2>/dev/null || early=1
    if [ "$1" = remus ]; then kill -TERM $tool 2>/dev/null || true; else kill -INT $tool 2>/dev/null || true; fi
    for _i in $(seq 1 30); do kill -0 $tool 2>/dev/null || break; sleep 1; done
    kill -KILL $tool 2>/dev/null || true; wait $tool 2>/dev/null || true
    n=$(checkpoints "$1")
    st=$(xl list labchurn 2>/dev/null | awk 'NR == 2 {print $5}')
    died=$(xen_death_line "$dom" | tr -d '\r')
    case $st in *c*) [ -n "$died" ] || died="state $st";; esac
    if [ -n "$died" ]; then
        echo "$1 $2 $n died" >> /tmp/churn.rows
        echo "row $1 $2: died after $n checkpoints: $died (state $st)"
        last_words "$1" 2
    else
        echo "$1 $2 $n ok $early" >> /tmp/churn.rows
        why=
        [ $early = 0 ] || why=", the tool ended early: $(last_words "$1" 1)"
        echo "row $1 $2: $n checkpoints$why (state $st)"
    fi
    xl destroy labchurn 2>/dev/null || true
    for _i in $(seq 1 30); do xl list labchurn > /dev/null 2>&1 || break; sleep 1; done
}
for c in $(seq 1 "${SUSPCHURN_CYCLES:-2}"); do
    echo "== cycle $c"
    for tsc in ${SUSPCHURN_TSC:-native default}; do
        for t in ${SUSPCHURN_TOOLS:-remus xl}; do row "$t" "$tsc"; done
    done
done
echo "suspchurn: rows of $S s at -i $I ms, checkpoints to /dev/null, output not held"
echo "| tool | tsc_mode | rows | checkpoints | deaths under checkpointing | per 100 checkpoints | deaths at boot (no row) |"
echo "|---|---|---|---|---|---|---|"
awk '{k = $1 " " $2; rows[k] += 0; b[k] += 0; d[k] += 0
      if ($4 == "boot") b[k]++; else {rows[k]++; n[k] += $3; if ($4 == "died") d[k]++}}
     END {for (k in rows) {split(k, a, " ");
          printf "| %s | %s | %d | %d | %d | %s | %d |\n", a[1], a[2], rows[k], n[k], d[k],
                 n[k] ? sprintf("%.2f", 100 * d[k] / n[k]) : "-", b[k]}}' /tmp/churn.rows | sort
