#!/usr/bin/env bash
# The guest starts on the micro-VMM (1 and 2 vCPUs) and its key-value
# service answers; bad guests and options are refused with a reason.
. "$ROOT/tests/lib/kvm.sh"
ns_setup tap0
for vcpus in 1 2; do
    start=$(date +%s%N)
    ip netns exec "$NS" "$REMUS" run --name g$vcpus --vcpus $vcpus --ip 10.77.0.2 \
        --netmask 255.255.255.0 --tap tap0 \
        --cmdline "dirty_rate=1000 dirty_wss=64" --console "$TMP/c$vcpus.log" \
        > "$TMP/run$vcpus.log" 2>&1 & PIDS+=($!)
    out=$(kv 5 1 "INCR a" "INCR a" "SET b 7" "GET b")
    ready_ms=$(( ($(date +%s%N) - start) / 1000000 ))
    echo "$vcpus vcpus: answered after ${ready_ms} ms: $(echo $out)"
    grep -q "^2 OK 2 seq=2$" <<< "$out"
    grep -q "^4 OK 7 seq=4$" <<< "$out"
    grep -q "up: $vcpus vcpus" "$TMP/c$vcpus.log"
    sleep 0.3
    w=$(kv 5 5 STATS | sed 's/.*writes=\([0-9]*\).*/\1/')
    [ "$w" -gt 0 ] || { echo "the workload wrote no pages"; exit 1; }
    kill -TERM "${PIDS[-1]}"; wait "${PIDS[-1]}" || { echo "remus run did not stop cleanly"; exit 1; }
done
# Refusals, each with a clear message
if "$REMUS" run --image /etc/passwd --timeout 1 2> "$TMP/e1"; then exit 1; fi
grep -q "not a static x86-64 ELF" "$TMP/e1"
if "$REMUS" run --memory 3 2> "$TMP/e2"; then exit 1; fi
grep -q "memory 3" "$TMP/e2"
if "$REMUS" run --vcpus 9 2> "$TMP/e3"; then exit 1; fi
grep -q "vcpus 9" "$TMP/e3"
if "$REMUS" run --bogus 2> "$TMP/e4"; then rc=0; else rc=$?; fi
[ "$rc" = 2 ] || { echo "an unknown option exited $rc, not 2"; exit 1; }
grep -q "unknown option '--bogus'" "$TMP/e4" || { echo "the unknown option is not named"; cat "$TMP/e4"; exit 1; }
echo "refusals: $(head -1 "$TMP/e1")"
