#!/usr/bin/env bash
# --metrics (common/metrics.h, common/metrics_http.h) on a live pair: the
# real protect and receive loops on the memory-only backend
# (build/tests/mem_pair), each side serving its endpoint.
#  - both sides' text format passes `promtool check metrics` (which lints
#    too); a malformed line makes it fail (the check's negative control);
#  - values are sane: epochs > 0 and increasing between two scrapes, the
#    pause histogram counts every epoch, stream bytes > 0, the states;
#  - OpenMetrics when asked for (Accept): its content type, "# EOF", and
#    the OpenMetrics parser of python3-prometheus-client accepts it (and
#    refuses it without "# EOF");
#  - 404 elsewhere, 405 for POST;
#  - remus receive itself serves them while it waits for a primary;
#  - remus protect/receive refuse a bad --metrics address (exit 2, named)
#    and a port already taken (exit 1, named, before any VM);
#  - ops/grafana/remus.json queries only metrics that the endpoints serve.
set -euo pipefail
. "$ROOT/tests/lib/wait.sh"
. "$ROOT/tests/lib/scratch.sh"   # TMP, REMUS_RUN_DIR, PIDS
# The Debian python3 (python3-prometheus-client), whatever python3 is first
# in PATH.
PY=/usr/bin/python3

"$BUILD/tests/mem_pair" -t 30 -m 127.0.0.1:0 -M 127.0.0.1:0 > "$TMP/pair.out" 2> "$TMP/pair.log" & PAIR=$!; PIDS+=($PAIR)
wait_until 10 "both endpoints" eval '[ "$(grep -c "^metrics " "$TMP/pair.out")" -eq 2 ]'
PP=$(awk '$2 == "primary" { print $3 }' "$TMP/pair.out")
SP=$(awk '$2 == "secondary" { print $3 }' "$TMP/pair.out")
scrape() { curl -sSf --max-time 5 "http://127.0.0.1:$1/metrics"; }
value() { awk -v n="$2" '$1 == n { print $2 }' "$1"; }   # value FILE SERIES
wait_until 10 "the first acknowledged checkpoint" \
    eval 'scrape $PP | grep -qx "remus_ready 1"'

scenario "text format: promtool, sane values"
scrape "$PP" > "$TMP/p1.txt"
sleep 1
scrape "$PP" > "$TMP/p2.txt"
scrape "$SP" > "$TMP/s1.txt"
for f in p1 p2 s1; do
    promtool check metrics < "$TMP/$f.txt" || { echo "promtool refuses $f:"; cat "$TMP/$f.txt"; exit 1; }
done
# The check can fail: a malformed line, a counter without _total.
{ cat "$TMP/p1.txt"; echo 'remus_broken{le="x" 1'; } > "$TMP/bad1.txt"
must_fail "a malformed line" eval 'promtool check metrics < "$TMP/bad1.txt"'
sed 's/^remus_epochs_total /remus_epochs_count /; s/^# TYPE remus_epochs_total counter/# TYPE remus_epochs_count counter/; s/^# HELP remus_epochs_total/# HELP remus_epochs_count/' \
    "$TMP/p1.txt" > "$TMP/bad2.txt"
must_fail "a counter without _total" eval 'promtool check metrics < "$TMP/bad2.txt"'
e1=$(value "$TMP/p1.txt" remus_epochs_total); e2=$(value "$TMP/p2.txt" remus_epochs_total)
echo "primary epochs: $e1, a second later $e2"
[ "$e1" -gt 0 ] && [ "$e2" -gt "$e1" ] || { echo "epochs not increasing"; exit 1; }
[ "$(value "$TMP/p2.txt" remus_pause_seconds_count)" = "$e2" ] ||
    { echo "the pause histogram does not count every epoch"; exit 1; }
[ "$(value "$TMP/p2.txt" 'remus_pause_seconds_bucket{le="+Inf"}')" = "$e2" ]
[ "$(value "$TMP/p2.txt" remus_ack_latency_seconds_count)" = "$e2" ]
[ "$(value "$TMP/p2.txt" remus_stream_bytes_total)" -gt 0 ]
[ "$(value "$TMP/p2.txt" remus_memory_bytes_total)" -gt 0 ]
grep -qx 'remus_state{state="protecting"} 1' "$TMP/p2.txt"
grep -qx 'remus_peer_up 1' "$TMP/p2.txt"
grep -qx 'remus_info{name="mem",role="primary",backend="kvm"} 1' "$TMP/p2.txt"
grep -qx 'remus_state{state="replica"} 1' "$TMP/s1.txt"
grep -qx 'remus_last_failover_timestamp_seconds 0' "$TMP/s1.txt"
[ "$(value "$TMP/s1.txt" remus_epochs_total)" -gt 0 ]
if grep -q remus_pause_seconds "$TMP/s1.txt"; then    # the primary's only
    echo "the secondary serves the pause"; exit 1
fi

scenario "OpenMetrics when asked for"
OM='Accept: application/openmetrics-text; version=1.0.0,text/plain;q=0.5'
for port in "$PP" "$SP"; do
    curl -sSf --max-time 5 -H "$OM" -D "$TMP/om.hdr" "http://127.0.0.1:$port/metrics" > "$TMP/om.txt"
    grep -qi '^content-type: application/openmetrics-text; version=1.0.0' "$TMP/om.hdr"
    [ "$(tail -1 "$TMP/om.txt")" = "# EOF" ]
    grep -qx '# TYPE remus_epochs counter' "$TMP/om.txt"
    $PY - "$TMP/om.txt" <<'PYEOF'
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
fams = list(text_string_to_metric_families(open(sys.argv[1]).read()))
print("OpenMetrics: %d families" % len(fams))
PYEOF
done
grep -qi '^content-type: text/plain; version=0.0.4' <(curl -sSf -D - -o /dev/null "http://127.0.0.1:$PP/metrics")
head -n -1 "$TMP/om.txt" > "$TMP/om-noeof.txt"
must_fail "OpenMetrics without # EOF" $PY -c '
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
list(text_string_to_metric_families(open(sys.argv[1]).read()))' "$TMP/om-noeof.txt"

scenario "other paths and methods"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PP/")" = 404 ]
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PP/metrics")" = 405 ]

scenario "the Grafana dashboard's metrics are served"
scrape "$PP" > "$TMP/p3.txt"
served() { cat "$TMP/p3.txt" "$TMP/s1.txt" | awk '!/^#/ { sub(/[{ ].*/, "", $1); print $1 }' | sort -u; }
dashboard() {  # the metric names the dashboard's queries use
    $PY - "$1" <<'PYEOF'
import json, re, sys
d = json.load(open(sys.argv[1]))
names = set()
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "expr" and isinstance(v, str):
                names.update(re.findall(r"\bremus_[a-z_]+", v))
            else:
                walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(d)
for n in sorted(names):
    print(n)
PYEOF
}
# unserved DASHBOARD: the dashboard's names that no endpoint serves
unserved() { comm -23 <(dashboard "$1") <(served); }
dashboard "$ROOT/ops/grafana/remus.json" > "$TMP/dash.names"
echo "the dashboard queries $(wc -l < "$TMP/dash.names") metrics"
[ "$(wc -l < "$TMP/dash.names")" -ge 10 ]
[ -z "$(unserved "$ROOT/ops/grafana/remus.json")" ] ||
    { echo "the dashboard queries metrics nobody serves:"; unserved "$ROOT/ops/grafana/remus.json"; exit 1; }
sed 's/remus_epochs_total/remus_epoch_count_total/' "$ROOT/ops/grafana/remus.json" > "$TMP/bad.json"
must_fail "a dashboard querying a metric nobody serves" eval '[ -z "$(unserved "$TMP/bad.json")" ]'

kill -INT $PAIR 2>/dev/null || true

scenario "remus receive itself serves its metrics while it waits"
# (a receiver waiting for its primary needs no /dev/kvm)
"$REMUS" receive --listen 127.0.0.1:0 --insecure --metrics 127.0.0.1:0 \
    > /dev/null 2> "$TMP/rcv.log" & RCV=$!; PIDS+=($RCV)
wait_until 10 "the receiver's endpoint" in_file "$TMP/rcv.log" "metrics at http://"
RP=$(grep -o 'metrics at http://127.0.0.1:[0-9]*' "$TMP/rcv.log" | sed 's/.*://')
scrape "$RP" > "$TMP/r.txt"
promtool check metrics < "$TMP/r.txt"
grep -qx 'remus_state{state="waiting"} 1' "$TMP/r.txt"
grep -qx 'remus_ready 1' "$TMP/r.txt"
grep -qx 'remus_peer_up 0' "$TMP/r.txt"
kill -TERM $RCV; wait $RCV || true
if curl -s --max-time 2 "http://127.0.0.1:$RP/metrics" > /dev/null; then
    echo "the endpoint outlived its receiver"; exit 1
fi

scenario "bad --metrics addresses are refused, named"
rc=0; "$REMUS" receive --listen 127.0.0.1:0 --insecure --metrics nonsense > /dev/null 2> "$TMP/e1" || rc=$?
cat "$TMP/e1"; [ $rc -eq 2 ]; grep -q "\-\-metrics 'nonsense'" "$TMP/e1"
rc=0; "$REMUS" protect --metrics 127.0.0.1:99999 - 127.0.0.1:1 > /dev/null 2> "$TMP/e2" || rc=$?
cat "$TMP/e2"; [ $rc -eq 2 ]; grep -q "\-\-metrics '127.0.0.1:99999'" "$TMP/e2"
# A port already taken: named, before any VM (no /dev/kvm needed).
python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)' > "$TMP/busy" & PIDS+=($!)
wait_until 5 "a busy port" test -s "$TMP/busy"
BUSY=$(cat "$TMP/busy")
rc=0; "$REMUS" receive --listen 127.0.0.1:0 --insecure --metrics 127.0.0.1:$BUSY > /dev/null 2> "$TMP/e3" || rc=$?
cat "$TMP/e3"; [ $rc -eq 1 ]; grep -q "metrics endpoint 127.0.0.1:$BUSY" "$TMP/e3"
echo ok
