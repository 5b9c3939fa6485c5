#!/usr/bin/env bash
# Failback on KVM: after a failover, `remus reprotect NAME HOST:PORT` (one
# command, on the host whose replica took over) protects the VM again to a
# new secondary with a full resync; `--stop` ends that cleanly; when the
# new primary dies in turn, the new secondary takes over with every
# acknowledged write.  Refusals: no secondary listening, already
# protected, -n or -d without -F, a COLO option without --colo, an
# output bound with -n, an unknown VM.
. "$ROOT/tests/lib/kvm.sh"
ns_setup tapp taps tapb
P1=127.0.0.1:7811 P2=127.0.0.1:7812
HB="--heartbeat 50 --heartbeat-timeout $(slow_ms 400)"
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=2000 dirty_wss=500" 1

ip netns exec "$NS" "$REMUS" receive --listen $P1 --tap taps $HB > "$TMP/sa.log" 2>&1 & SA=$!; PIDS+=($SA)
ip netns exec "$NS" "$REMUS" protect -i 20 $HB --progress 0 "$TMP/g.cfg" $P1 > "$TMP/pri.log" 2>&1 & PRI=$!; PIDS+=($PRI)
kv 1 1 "INCR a" "INCR a" "INCR a" | tail -1 | grep -q "^3 OK 3 " || { echo "the protected VM did not count to 3"; exit 1; }
sleep 1
kill -9 $PRI                                   # the primary host dies
wait_for "$TMP/sa.log" "FAILOVER" 10
kv 2 4 "GET a" | grep -q "^4 OK 3 " || { echo "the replica on A does not serve a = 3"; exit 1; }
echo "failover to A: $(grep FAILOVER "$TMP/sa.log")"

# Refusals
if NSX "$REMUS" reprotect -i 20 tguest 127.0.0.1:7899 2> "$TMP/e1"; then echo "reprotect to no secondary succeeded"; exit 1; fi
grep -q "not protected: cannot connect" "$TMP/e1" || { cat "$TMP/e1"; exit 1; }
if "$REMUS" reprotect -n tguest $P2 2> "$TMP/e2"; then echo "reprotect -n without -F succeeded"; exit 1; fi
grep -q "needs -F" "$TMP/e2" || { cat "$TMP/e2"; exit 1; }
if "$REMUS" reprotect -d tguest $P2 2> "$TMP/e2d"; then echo "reprotect -d without -F succeeded"; exit 1; fi
grep -q "error: -d needs -F" "$TMP/e2d" || { cat "$TMP/e2d"; exit 1; }
if "$REMUS" reprotect --compare-timeout 40 tguest $P2 2> "$TMP/e2c"; then echo "reprotect --compare-timeout without --colo succeeded"; exit 1; fi
grep -q "error: --compare-timeout is for COLO: add --colo" "$TMP/e2c" || { cat "$TMP/e2c"; exit 1; }
if "$REMUS" reprotect -F -n --netbuf-max-bytes 65536 tguest $P2 2> "$TMP/e2n"; then echo "reprotect -n --netbuf-max-bytes succeeded"; exit 1; fi
grep -q "error: --netbuf-max-bytes bounds held output: not with -n" "$TMP/e2n" || { cat "$TMP/e2n"; exit 1; }
if "$REMUS" reprotect nosuchvm $P2 2> "$TMP/e3"; then echo "reprotect of an unknown VM succeeded"; exit 1; fi
grep -q "no VM named 'nosuchvm'" "$TMP/e3" || { cat "$TMP/e3"; exit 1; }
kv 2 5 "GET a" | grep -q "^5 OK 3 " || { echo "after the refusals the VM does not serve a = 3"; exit 1; }

# Failback, then a clean stop: B discards its replica and exits 0
ip netns exec "$NS" "$REMUS" receive --listen $P2 --tap tapb $HB > "$TMP/sb.log" 2>&1 & SB=$!; PIDS+=($SB)
NSX "$REMUS" reprotect -i 20 -u --netbuf-max-bytes 1048576 $HB tguest $P2 2> "$TMP/rp1.log" || { cat "$TMP/rp1.log"; echo "reprotect to B failed"; exit 1; }
cat "$TMP/rp1.log"
grep -q "protected again by $P2: full resync of [0-9]* pages" "$TMP/rp1.log" || { echo "no full resync said"; exit 1; }
if "$REMUS" reprotect -i 20 tguest $P2 2> "$TMP/e4"; then exit 1; fi
grep -q "already protected" "$TMP/e4" || { cat "$TMP/e4"; exit 1; }
"$REMUS" status --json | grep -q '"state": "protecting"' || { echo "status does not say protecting"; "$REMUS" status --json; exit 1; }
"$REMUS" reprotect --stop tguest 2> "$TMP/stop.log" || { cat "$TMP/stop.log"; echo "reprotect --stop failed"; exit 1; }
grep -q "protection ended after [0-9]* checkpoints" "$TMP/stop.log" || { cat "$TMP/stop.log"; exit 1; }
wait $SB || { echo "B did not exit 0 after a clean stop"; cat "$TMP/sb.log"; exit 1; }
grep -q "the replica is discarded" "$TMP/sb.log" || { echo "B did not discard its replica"; cat "$TMP/sb.log"; exit 1; }
kv 2 6 "GET a" | grep -q "^6 OK 3 " || { echo "after the stop the VM on A does not serve a = 3"; exit 1; }

# Failback again, to B2; then A dies: B2 takes over with every acked write
ip netns exec "$NS" "$REMUS" receive --listen $P2 --tap tapb $HB > "$TMP/sb2.log" 2>&1 & SB2=$!; PIDS+=($SB2)
NSX "$REMUS" reprotect -i 20 $HB tguest $P2 2> "$TMP/rp2.log" || { cat "$TMP/rp2.log"; echo "reprotect to B2 failed"; exit 1; }
grep -q "protected again" "$TMP/rp2.log" || { cat "$TMP/rp2.log"; exit 1; }
kv 3 7 "INCR a" "INCR a" | tail -1 | grep -q "^8 OK 5 " || { echo "the VM protected to B2 did not count to 5"; exit 1; }
sleep 0.5
kill -9 $SA                                    # the new primary dies
wait_for "$TMP/sb2.log" "FAILOVER" 10
kv 4 9 "GET a" | grep -q "^9 OK 5 " || { echo "B2 lost acknowledged writes"; kv 4 10 "GET a"; exit 1; }
echo "failback: $(tail -1 "$TMP/rp2.log")"
echo "second failover to B2: $(grep FAILOVER "$TMP/sb2.log")"
kill -TERM $SB2; rc=0; wait $SB2 || rc=$?
[ $rc = 3 ] || { echo "B2 should exit 3 after its failover (got $rc)"; exit 1; }
