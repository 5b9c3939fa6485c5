#!/usr/bin/env bash
# The Pacemaker OCF agent (ocf/remus), a promotable clone of a protection
# pair:
#  1. ocf-tester (resource-agents) checks its meta-data against the OCF
#     DTD and the contract of every action on one node (start, monitor,
#     promote, demote, stop, twice each, probes);
#  2. a protection pair on two "nodes" (run and state directories of their
#     own), driven action by action as Pacemaker drives it: start both,
#     promote A (the VM runs on A, protected to B), kill B's receiver and
#     restart B (A's monitor protects the VM to B again), an operator
#     stops A's protection and resumes it (B listens again), B's receiver
#     dies again and B restarts, then move the promoted role to B before
#     A's monitor (demote A = protect to B again, handover; promote B),
#     B's monitor protects the VM back to A, move it back to A; a move
#     to a B that stalls fails and the VM runs on at A; stop both; every
#     acknowledged write survives each move.
. "$ROOT/tests/lib/kvm.sh"
command -v ocf-tester >/dev/null || { echo "ocf-tester is missing (make deps: resource-agents)"; exit 1; }
ns_setup tapp tapa tapb
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=2000 dirty_wss=500" 1
AGENT="$ROOT/ocf/remus"
NODES="nodeA=127.0.0.1:7861 nodeB=127.0.0.1:7862"

# -- 1. ocf-tester ---------------------------------------------------------------
scenario "ocf-tester"
ocf-tester -n tguest -o name=tguest -o config="$TMP/g.cfg" \
    -o nodes="nodeA=127.0.0.1:7871 nodeB=127.0.0.1:7872" -o binary="$REMUS" \
    -o run_dir="$TMP/t/run" -o state_dir="$TMP/t/state" -o tap=tapp \
    -o tap_netns="$NS" -o interval=20 -o CRM_meta_on_node=nodeA \
    -o key_file="$REMUS_KEY_FILE" \
    "$AGENT" > "$TMP/tester.log" 2>&1 || { cat "$TMP/tester.log"; ls "$TMP/t/state"/*/ 2>/dev/null; tail -n 5 "$TMP/t/state"/*/*.log; exit 1; }
tail -n 1 "$TMP/tester.log"

# -- 2. a pair, moved twice -------------------------------------------------------
scenario "a pair, moved twice"
# ra NODE ACTION: run the agent as Pacemaker would on NODE; prints its rc.
ra() {
    local rc=0
    OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=tguest __OCF_ACTION=$2 \
    OCF_RESKEY_CRM_meta_on_node=$1 OCF_RESKEY_CRM_meta_interval=10000 \
    OCF_RESKEY_name=tguest OCF_RESKEY_config="$TMP/g.cfg" \
    OCF_RESKEY_nodes="$NODES" OCF_RESKEY_binary="$REMUS" \
    OCF_RESKEY_tap="nodeA=tapa nodeB=tapb" OCF_RESKEY_tap_netns="$NS" \
    OCF_RESKEY_interval=20 OCF_RESKEY_heartbeat=50 OCF_RESKEY_heartbeat_timeout=400 \
    OCF_RESKEY_run_dir="$TMP/$1/run" OCF_RESKEY_state_dir="$TMP/$1/state" \
    OCF_RESKEY_key_file="$REMUS_KEY_FILE" \
    OCF_RESKEY_CRM_meta_timeout="${META_TIMEOUT:-60000}" \
        "$AGENT" "$2" >> "$TMP/ra-$1.log" 2>&1 || rc=$?
    echo $rc
}
expect() {  # expect NODE ACTION RC
    local got t0; t0=$(date +%s%N); got=$(ra "$1" "$2")
    echo "$1 $2 -> $got in $(( ($(date +%s%N) - t0) / 1000000 )) ms" >> "$TMP/actions.log"
    [ "$got" = "$3" ] || { echo "$2 on $1 returned $got, expected $3"; agent_logs; exit 1; }
}
# agent_logs: the agent's and both nodes' remus logs, their tails
agent_logs() { for f in "$TMP"/ra-*.log "$TMP"/node*/state/tguest/*.log; do echo "--- $f"; tail -n 15 "$f"; done; }
trap 'ra nodeA stop >/dev/null; ra nodeB stop >/dev/null; cleanup' EXIT
expect nodeA monitor 7
expect nodeA start 0
expect nodeB start 0
expect nodeA monitor 0
expect nodeA promote 0
expect nodeA monitor 8
wait_until 10 "B holds the replica" in_file "$TMP/nodeB/run/tguest.secondary.status.json" '"state": "replica"'
expect nodeB monitor 0
kv 1 1 "INCR a" "INCR a" "INCR a" | tail -1 | grep -q "^3 OK 3 " || { echo "no acknowledged writes on A"; exit 1; }
echo "pair: the VM runs on A, B holds its replica"

# B's receiver dies (its node restarts, say): B's monitor reports the
# failure, Pacemaker restarts B (stop, start), and A's next monitor
# protects the VM, which `remus protect` runs on A unprotected since,
# to B again.
kill -KILL "$(cat "$TMP/nodeB/state/tguest/receive.pid")"
wait_until 10 "A's protection to see B gone" in_file "$TMP/nodeA/run/tguest.primary.status.json" '"state": "unprotected"'
expect nodeB monitor 1
expect nodeB stop 0
expect nodeB start 0
expect nodeA monitor 8       # protects the VM to B again
wait_until 20 "B holds the replica again" in_file "$TMP/nodeB/run/tguest.secondary.status.json" '"state": "replica"' || true
grep -q '"state": "replica"' "$TMP/nodeB/run/tguest.secondary.status.json" ||
    { echo "A's monitor did not protect the VM to B again after B's restart"; agent_logs; exit 1; }
wait_until 10 "A to be protecting" in_file "$TMP/nodeA/run/tguest.primary.status.json" '"state": "protecting"'
expect nodeA monitor 8
echo "B restarted: A's monitor protected the VM to it again"

# An operator ends A's protection cleanly (`remus reprotect --stop`; the
# VM runs on): B's receiver ends by itself (its primary stopped
# protection), which is no failure of B's: B's monitor starts it again;
# A's monitor leaves the operator's stop alone; the operator protects the
# VM to B again.
A_CTL=(env REMUS_RUN_DIR="$TMP/nodeA/run")
"${A_CTL[@]}" "$REMUS" reprotect --stop tguest > "$TMP/rpstop.log" 2>&1 || { cat "$TMP/rpstop.log"; exit 1; }
wait_until 10 "B's receiver to end" ended "$(cat "$TMP/nodeB/state/tguest/receive.pid")"
expect nodeB monitor 0       # listening again
wait_until 10 "B listening again" in_file "$TMP/nodeB/run/tguest.secondary.status.json" '"state": "waiting"'
expect nodeA monitor 8
sleep 1
if [ -e "$TMP/nodeB/run/tguest.secondary.status.json" ] && grep -q '"state": "syncing\|"state": "replica' "$TMP/nodeB/run/tguest.secondary.status.json"; then
    echo "A's monitor protected the VM again after an operator stopped it"; exit 1
fi
"${A_CTL[@]}" "$REMUS" reprotect -i 20 --heartbeat 50 --heartbeat-timeout 400 tguest 127.0.0.1:7862 > "$TMP/rp2.log" 2>&1 ||
    { cat "$TMP/rp2.log"; agent_logs; exit 1; }
wait_until 20 "B holds the replica again" in_file "$TMP/nodeB/run/tguest.secondary.status.json" '"state": "replica"'
echo "an operator stopped A's protection: B listened again; protected again by hand"

# Move A -> B while the VM is not protected: B's receiver dies again,
# Pacemaker restarts B, and the move comes before A's next monitor.  A's
# demote protects the VM to B again first, then hands it over (stopped
# unprotected, its state would be lost: B, holding no replica, would
# start the VM afresh from its config).
kill -KILL "$(cat "$TMP/nodeB/state/tguest/receive.pid")"
wait_until 10 "A's protection to see B gone" in_file "$TMP/nodeA/run/tguest.primary.status.json" '"state": "unprotected"'
expect nodeB monitor 1
expect nodeB stop 0
expect nodeB start 0
t0=$(date +%s%N)
expect nodeA demote 0
expect nodeB promote 0
kv 2 4 "GET a" | grep -q "^4 OK 3 " || { agent_logs; echo "B lost acknowledged writes (a move while the VM was not protected)"; exit 1; }
t1=$(date +%s%N)
expect nodeB monitor 8       # also protects the VM back to A
expect nodeA monitor 0
wait_until 10 "A holds the replica" in_file "$TMP/nodeA/run/tguest.secondary.status.json" '"state": "replica"' || true
grep -q '"state": "replica"' "$TMP/nodeA/run/tguest.secondary.status.json" || { echo "B's monitor did not protect the VM to A"; cat "$TMP"/nodeB/state/tguest/reprotect.log; exit 1; }
kv 3 5 "INCR a" "INCR a" | tail -1 | grep -q "^6 OK 5 " || { echo "no acknowledged writes on B"; exit 1; }
echo "moved to B in $(( (t1 - t0) / 1000000 )) ms (demote + promote + first answer); A holds the replica again"

# Move B -> A
expect nodeB demote 0
expect nodeA promote 0
kv 4 7 "GET a" | grep -q "^7 OK 5 " || { echo "A lost acknowledged writes on the way back"; exit 1; }
expect nodeA monitor 8
expect nodeB monitor 0
echo "moved back to A with every acknowledged write"

# A move that cannot hand the VM over: B's receiver is gone and what
# listens at its address now never answers (a stalled peer).  The demote
# fails within its timeout (20 s, less 15, and 8 for the reprotection
# under way to end) and the VM runs on at A.
kill -KILL "$(cat "$TMP/nodeB/state/tguest/receive.pid")"
wait_until 10 "A's protection to see B gone" in_file "$TMP/nodeA/run/tguest.primary.status.json" '"state": "unprotected"'
python3 -c 'import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 7862)); s.listen(8); held = []
while True: held.append(s.accept()[0])' & STALL=$!; PIDS+=($STALL)
wait_until 10 "the stalled listener" eval 'ss -Hltn "sport = :7862" | grep -q .'
META_TIMEOUT=20000 expect nodeA demote 1
grep -q "not protected to the peer.*no handover without a replica" "$TMP/ra-nodeA.log" ||
    { echo "the failed demote does not say why"; tail -n 5 "$TMP/ra-nodeA.log"; exit 1; }
kv 5 8 "INCR a" | grep -q "^8 OK 6 " || { agent_logs; echo "after a demote that could not hand over, the VM does not run on at A"; exit 1; }
expect nodeA monitor 8
echo "a demote with no replica to hand over to failed; the VM runs on at A"
kill $STALL; wait $STALL 2>/dev/null || true

expect nodeA stop 0
expect nodeB stop 0
expect nodeA monitor 7
expect nodeB monitor 7
if kv 6 9 "GET a" > /dev/null 2>&1; then echo "the VM still runs after both stops"; exit 1; fi
echo "stopped on both nodes"
echo "actions (node action -> rc, time):"; sed 's/^/  /' "$TMP/actions.log"

# -- 3. no key: refused as misconfigured, unless insecure=true -------------------
scenario "no key"
rc=0
OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=tguest OCF_RESKEY_CRM_meta_on_node=nodeA \
    OCF_RESKEY_name=tguest OCF_RESKEY_config="$TMP/g.cfg" OCF_RESKEY_nodes="$NODES" \
    OCF_RESKEY_binary="$REMUS" OCF_RESKEY_key_file="$TMP/no-such.key" \
    "$AGENT" validate-all > "$TMP/nokey.log" 2>&1 || rc=$?
[ "$rc" = 6 ] || { echo "validate-all without a key: rc $rc, not 6 (OCF_ERR_CONFIGURED)"; cat "$TMP/nokey.log"; exit 1; }
grep -q "no key file" "$TMP/nokey.log" || { echo "the reason does not name the key"; cat "$TMP/nokey.log"; exit 1; }
rc=0
OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=tguest OCF_RESKEY_CRM_meta_on_node=nodeA \
    OCF_RESKEY_name=tguest OCF_RESKEY_config="$TMP/g.cfg" OCF_RESKEY_nodes="$NODES" \
    OCF_RESKEY_binary="$REMUS" OCF_RESKEY_key_file="$TMP/no-such.key" OCF_RESKEY_insecure=true \
    "$AGENT" validate-all > "$TMP/insecure.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || { echo "validate-all with insecure=true: rc $rc"; cat "$TMP/insecure.log"; exit 1; }
echo "no key: refused as misconfigured; insecure=true accepted"
