#!/usr/bin/env bash
# Planned moves (`remus handover NAME`, what the OCF agent's demote runs
# when Pacemaker moves a protection pair): the VM is paused for good where
# it ran, the secondary takes over from its last acknowledged checkpoint
# with every acknowledged write, and the old primary's process ends 0.
#  1. from `remus protect` (SIGUSR1 through its status file) to A;
#  2. back from A, protected again with `remus reprotect`, to B (through
#     A's control socket); B runs it;
#  3. refusals: an unknown VM, a VM that is not protected.
. "$ROOT/tests/lib/kvm.sh"
ns_setup tapp taps tapb
P1=127.0.0.1:7821 P2=127.0.0.1:7822
HB="--heartbeat 100 --heartbeat-timeout 2000"   # generous: ASan builds on a loaded host
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=2000 dirty_wss=500" 1

ip netns exec "$NS" "$REMUS" receive --listen $P1 --tap taps $HB > "$TMP/sa.log" 2>&1 & SA=$!; PIDS+=($SA)
ip netns exec "$NS" "$REMUS" protect -i 20 $HB --progress 0 "$TMP/g.cfg" $P1 > "$TMP/pri.log" 2>&1 & PRI=$!; PIDS+=($PRI)
kv 1 1 "INCR a" "INCR a" "INCR a" | tail -1 | grep -q "^3 OK 3 "
wait_until 5 "the primary's status 'protecting'" in_file "$REMUS_RUN_DIR"/tguest.primary.status.json '"state": "protecting"'

# 1. protect -> A
scenario "protect -> A"
t0=$(date +%s%N)
"$REMUS" handover tguest > "$TMP/h1.out" 2> "$TMP/h1.err" || { cat "$TMP/h1.err"; exit 1; }
rc=0; wait $PRI || rc=$?
[ $rc = 0 ] || { echo "the old primary exited $rc, not 0"; cat "$TMP/pri.log"; exit 1; }
grep -q "HANDED OVER" "$TMP/pri.log" || { cat "$TMP/pri.log"; exit 1; }
wait_for "$TMP/sa.log" "FAILOVER" 10
kv 2 4 "GET a" | grep -q "^4 OK 3 " || { echo "A lost acknowledged writes"; exit 1; }
t1=$(date +%s%N)
grep -q "primary handed the VM over" "$TMP/sa.log" || { cat "$TMP/sa.log"; exit 1; }
echo "handover 1: $(cat "$TMP/h1.out"); A answers $(( (t1 - t0) / 1000000 )) ms after the request"

# 2. A (reprotected to B) -> B
scenario "A (reprotected to B) -> B"
ip netns exec "$NS" "$REMUS" receive --listen $P2 --tap tapb $HB > "$TMP/sb.log" 2>&1 & SB=$!; PIDS+=($SB)
NSX "$REMUS" reprotect -i 20 $HB tguest $P2 2> "$TMP/rp.log" || { cat "$TMP/rp.log"; exit 1; }
kv 3 5 "INCR a" "INCR a" | tail -1 | grep -q "^6 OK 5 "
"$REMUS" handover tguest > "$TMP/h2.out" 2> "$TMP/h2.err" || { cat "$TMP/h2.err"; exit 1; }
rc=0; wait $SA || rc=$?
[ $rc = 3 ] || { echo "A (which had taken over) should end with 3, got $rc"; tail "$TMP/sa.log"; exit 1; }
wait_for "$TMP/sb.log" "FAILOVER" 10
kv 4 7 "GET a" | grep -q "^7 OK 5 " || { echo "B lost acknowledged writes"; exit 1; }
echo "handover 2: $(cat "$TMP/h2.out")"

# 3. refusals
scenario "refusals"
if "$REMUS" handover nosuchvm 2> "$TMP/e1"; then exit 1; fi
grep -q "no VM named 'nosuchvm' is held by a remus process here" "$TMP/e1" || { cat "$TMP/e1"; exit 1; }
# B runs it unprotected.  (A and B share this host's run directory: B,
# which took over last, holds the VM's control socket.)
if "$REMUS" handover tguest 2> "$TMP/e2"; then exit 1; fi
grep -q "'tguest' is not being protected here (nothing to hand over to)" "$TMP/e2" || { cat "$TMP/e2"; exit 1; }
kv 4 8 "GET a" | grep -q "^8 OK 5 "        # the refusal left the VM alone
echo "refusals: $(tail -1 "$TMP/e1" | cut -c1-100); $(tail -1 "$TMP/e2" | cut -c1-100)"
