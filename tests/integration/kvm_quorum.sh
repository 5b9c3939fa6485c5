#!/usr/bin/env bash
# Split-brain protection with corosync really running: three host
# namespaces (primary p = corosync node 1, secondary s = node 2, arbiter a
# = corosync-qnetd; corosync-qdevice on p and s, algorithm ffsplit), a
# protected KVM VM (protect/receive --quorum corosync, the secondary with a
# --fence-cmd), and every partition of the issue.  In each, exactly one
# side runs the VM with every acknowledged write, or, where no side can be
# sure, none does, and both say why:
#   cut          p-s link cut, both reach a  -> the half qnetd votes for
#                (ffsplit; usually the tie-breaker's, p) runs the VM, the
#                other stands down or stops it (exit 4)
#   isolate-p    p cut from s and a          -> s fences p and takes over,
#                p stops its VM (exit 4), nothing it held released
#   isolate-s    s cut from p and a          -> p runs on, s stands down
#   arbiter-down qnetd stops                 -> 2 of 3 votes: protection
#                goes on; then kill -9 of the primary's process (its host
#                lives) -> s takes over
#   arbiter-down-then-cut                    -> no side quorate: p stops,
#                s stands down, the VM runs nowhere; both say "no quorum"
. "$ROOT/tests/lib/kvm.sh"
. "$ROOT/tests/lib/cluster.sh"
for b in corosync corosync-qdevice corosync-qnetd corosync-quorumtool; do
    command -v $b >/dev/null || { echo "$b is missing (make deps)"; exit 1; }
done
ns_setup tapp taps
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=2000 dirty_wss=500" 1
echo "tap_netns = $NS" >> "$TMP/g.cfg"
HB="--heartbeat 50 --heartbeat-timeout 2000"   # generous: ASan builds on a loaded host
Q="--quorum corosync --quorum-settle 8000"
trap 'cluster_down; cleanup' EXIT

value() { (kv "$1" "$2" "GET x" 2>/dev/null || true) | awk '$2 == "OK" {print $3}'; }
fail() { echo "FAIL ($case): $*"; for f in "$D"/*.log; do echo "--- $f"; tail -n 25 "$f"; done; exit 1; }

start_pair() {   # start_pair CASE: fresh cluster, protection, acked writes
    new_cluster "$1"
    start_protection
}
new_cluster() {  # new_cluster CASE: a fresh cluster, logs in $TMP/CASE
    case=$1; D="$TMP/$case"; mkdir -p "$D"
    cluster_up "$D/cluster" || fail "the cluster did not form"
}
start_protection() {   # the pair, protecting, with acknowledged writes
    ip netns exec "${CL}s" "$REMUS" receive --listen "${STREAM_IP:-10.78.0.2}:7850" \
        --name tguest --tap taps --tap-netns "$NS" $HB $Q \
        --fence-cmd "echo \"fenced \$REMUS_NAME at \$REMUS_EPOCH from \$REMUS_PEER\" >> $D/fence.out" \
        > "$D/sec.log" 2>&1 & SEC=$!; PIDS+=($SEC)
    sleep 0.3
    ip netns exec "${CL}p" "$REMUS" protect -i 20 --progress 0 $HB $Q --metrics 127.0.0.1:0 \
        "$TMP/g.cfg" "${STREAM_IP:-10.78.0.2}:7850" > "$D/pri.log" 2>&1 & PRI=$!; PIDS+=($PRI)
    acked=$( (kv 1 1 "INCR x" "INCR x" "INCR x" "INCR x" "INCR x" 2>/dev/null || true) |
            awk '$2 == "OK" {v=$3} END {print v+0}')
    [ "$acked" = 5 ] || fail "writes were not acknowledged under protection"
    grep -q "the secondary is process" "$D/pri.log" ||
        sleep 1
    grep -q "the secondary is process" "$D/pri.log" ||
        grep -q "joined" "$D/pri.log" || fail "the primary never saw the secondary in its group"
}
end_pair() {
    kill -INT $PRI 2>/dev/null || true; sleep 0.3
    kill -9 $PRI $SEC 2>/dev/null || true
    wait $PRI $SEC 2>/dev/null || true
    cluster_down
}
primary_runs_on() {
    wait_until 20 "the primary's decision" in_file "$D/pri.log" "the VM runs on" || true
    grep -q "the VM runs on: this partition holds quorum" "$D/pri.log" ||
        fail "the primary did not decide to run on"
    alive $PRI || fail "the primary's VM is not running"
    v=$(value 2 10); [ "$v" = "$acked" ] || fail "the primary has '$v', acked $acked"
}
secondary_stands_down() {   # secondary_stands_down REASON-PATTERN
    st=0; wait_exit $SEC 30 || st=$?; [ "$st" = 4 ] || fail "the secondary did not stand down (exit $st, not 4)"
    grep -q "NOT TAKING OVER" "$D/sec.log" || fail "the secondary did not say it stands down"
    grep -Eq "$1" "$D/sec.log" || fail "the secondary's reason is not '$1'"
    [ ! -s "$D/fence.out" ] || fail "the fence command ran although it did not take over"
}

# -- the primary-secondary link cut ------------------------------------------
scenario "the primary-secondary link cut"
# qnetd's ffsplit gives its vote to one of the two equal halves (usually
# the tie-breaker's, node 1; not always): that side runs the VM, the other
# must not.
start_pair cut
# While it protects, the primary's metrics say its partition is quorate
# (sampled once a second from the checkpoint loop).
quorate_metric() {
    local port
    port=$(grep -o 'metrics at http://127.0.0.1:[0-9]*' "$D/pri.log" | sed 's/.*://')
    [ -n "$port" ] || return 1
    ip netns exec "${CL}p" curl -sSf --max-time 5 "http://127.0.0.1:$port/metrics" |
        awk '$1 == "remus_quorum_quorate" {print $2}'
}
wait_until 10 "remus_quorum_quorate 1 in the primary's metrics" \
    eval '[ "$(quorate_metric)" = 1 ]' || fail "the primary's metrics do not say quorate: '$(quorate_metric)'"
cluster_cut p s
one_side_decided() {
    { grep -q "the VM runs on" "$D/pri.log" && ! alive $SEC; } ||
        { grep -q "FAILOVER" "$D/sec.log" && ! alive $PRI; }
}
wait_until 30 "one side to run on and the other to stop" one_side_decided || fail "neither side decided"
if grep -q "the VM runs on" "$D/pri.log"; then
    secondary_stands_down "no quorum"
    primary_runs_on
    echo "cut: the primary runs on; $(grep -o 'NOT TAKING OVER.*' "$D/sec.log" | cut -c1-160)"
else
    st=0; wait_exit $PRI 20 || st=$?; [ "$st" = 4 ] || fail "neither the primary ran on nor did it stop (exit $st)"
    grep -q "FAILOVER" "$D/sec.log" || fail "neither side runs the VM, though one half holds quorum"
    grep -q "fenced tguest at " "$D/fence.out" || fail "the fence command did not run before the takeover"
    v=$(value 2 10); [ "$v" = "$acked" ] || fail "the replica has '$v', acked $acked"
    echo "cut: qnetd chose the secondary's half: it took over, the primary stopped its VM"
fi
end_pair

# -- the primary isolated ------------------------------------------------------
scenario "the primary isolated"
start_pair isolate-p
cluster_isolate p
st=0; wait_exit $PRI 30 || st=$?; [ "$st" = 4 ] || fail "the isolated primary did not stop its VM (exit $st, not 4)"
grep -q "STOPPING the VM" "$D/pri.log" || fail "the primary did not say it stops"
grep -q "no quorum" "$D/pri.log" || fail "the primary did not say why"
wait_until 20 "the secondary's takeover" in_file "$D/sec.log" FAILOVER || true
grep -q FAILOVER "$D/sec.log" || fail "the secondary did not take over"
grep -q "fenced tguest at " "$D/fence.out" || fail "the fence command did not run before the takeover"
alive $SEC || fail "the replica is not running"
v=$(value 2 10); [ "$v" = "$acked" ] || fail "the replica has '$v', acked $acked"
echo "isolate-p: $(grep -o 'FAILOVER.*' "$D/sec.log" | cut -c1-120); fence: $(cat "$D/fence.out")"
# The side that took over holds the VM only while its partition is
# quorate: with the arbiter gone too it has 1 vote of 3, and stops the VM
# (exit 4) before any other partition could be quorate long enough to act.
cluster_arbiter_down
st=0; wait_exit $SEC 20 || st=$?; [ "$st" = 4 ] || fail "the side that took over ran on without quorum (exit $st, not 4)"
grep -q "lost quorum .* while it ran the VM" "$D/sec.log" || fail "the secondary did not say why it stopped the VM"
if kv 3 1 "GET x" > /dev/null 2>&1; then fail "the VM still answers"; fi
echo "isolate-p, then the arbiter down: $(grep -o 'STOPPED the VM.*' "$D/sec.log" | cut -c1-160)"
end_pair

# -- the secondary isolated ----------------------------------------------------
scenario "the secondary isolated"
start_pair isolate-s
cluster_isolate s
secondary_stands_down "no quorum"
primary_runs_on
echo "isolate-s: the primary runs on, the secondary stood down"
end_pair

# -- the arbiter down: protection goes on; a dead primary process is replaced -
scenario "the arbiter down"
start_pair arbiter-down
cluster_arbiter_down
sleep 4
cluster_quorate p && cluster_quorate s || fail "2 of 3 votes should keep quorum"
alive $PRI && alive $SEC || fail "the arbiter going down ended protection"
if grep -q FAILOVER "$D/sec.log"; then fail "a failover without a fault"; fi
acked=$( (kv 1 10 "INCR x" "INCR x" 2>/dev/null || true) | awk '$2 == "OK" {v=$3} END {print v+0}')
[ "$acked" = 7 ] || fail "writes were not acknowledged with the arbiter down"
kill -9 $PRI; wait $PRI 2>/dev/null || true
wait_until 20 "the secondary's takeover" in_file "$D/sec.log" FAILOVER || true
grep -q FAILOVER "$D/sec.log" || fail "the secondary did not take over from a dead primary process"
v=$(value 2 20); [ "$v" = "$acked" ] || fail "the replica has '$v', acked $acked"
echo "arbiter-down: protection went on; after kill -9 of the primary: $(grep -o 'taking over: .*' "$D/sec.log" | cut -c1-120)"
# Failback keeps the quorum gate: the VM's process (the replica that took
# over, a --quorum secondary) protects it again to a new --quorum
# secondary on p; the reprotection joins the group as the primary, and
# when that secondary dies the cluster decides before the VM runs on.
ip netns exec "${CL}p" "$REMUS" receive --listen 10.78.0.1:7851 --name tguest \
    --tap tapp --tap-netns "$NS" $HB $Q > "$D/sec2.log" 2>&1 & SEC2=$!; PIDS+=($SEC2)
sleep 0.3
ip netns exec "${CL}s" "$REMUS" reprotect -i 20 $HB tguest 10.78.0.1:7851 > "$D/rp.out" 2> "$D/rp.err" ||
    fail "the reprotection of a --quorum VM to a --quorum secondary failed: $(cat "$D/rp.err")"
grep -q "named in the handshake" "$D/sec2.log" || fail "the new secondary did not bind the reprotecting process"
grep -q "the secondary is process .* (named in the handshake)" "$D/sec.log" || fail "the reprotection did not join the group as the primary"
acked=$( (kv 1 20 "INCR x" 2>/dev/null || true) | awk '$2 == "OK" {v=$3} END {print v+0}')
[ "$acked" = 8 ] || fail "no acknowledged write after the reprotection"
kill -9 $SEC2; wait $SEC2 2>/dev/null || true
wait_until 30 "the cluster's decision on the reprotected side" in_file "$D/sec.log" "the VM runs on" ||
    fail "the reprotected VM did not go through the quorum gate"
grep -q "output stays held until the cluster decides" "$D/sec.log" || fail "the output was not held while the cluster decided"
echo "failback with quorum: $(grep -o 'the VM runs on.*' "$D/sec.log" | head -1 | cut -c1-120)"
end_pair

# -- a stray process in the group (a Pacemaker-style bring-up) -------------
scenario "a stray process in the group"
# Another process joins remus:tguest on the secondary's host before the
# pair forms.  The peer is the process the handshake named, not the first
# one seen: when the primary's process dies, the secondary takes over
# although the stray is still in the group (before: it took the stray for
# the primary, saw it alive, and stood down).
new_cluster stray
ip netns exec "${CL}s" "$BUILD/tests/cpg_join" remus:tguest > "$D/stray.log" 2>&1 & STRAY=$!; PIDS+=($STRAY)
wait_until 10 "the stray process to join the group" in_file "$D/stray.log" joined || fail "the stray did not join"
start_protection
grep -q "named in the handshake" "$D/sec.log" || fail "the secondary did not bind the primary the handshake named"
kill -9 $PRI; wait $PRI 2>/dev/null || true
wait_until 30 "the secondary's takeover" in_file "$D/sec.log" FAILOVER || fail "the secondary did not take over: it took the stray for the primary"
alive $STRAY || fail "the stray left the group: the test proves nothing"
v=$(value 2 30); [ "$v" = "$acked" ] || fail "the replica has '$v', acked $acked"
echo "stray: $(grep -o 'the primary is process.*named in the handshake.*' "$D/sec.log" | head -1); took over with the stray still in the group"
kill $STRAY; wait $STRAY 2>/dev/null || true
end_pair

# -- the primary frozen across the decision -------------------------------
scenario "the primary frozen across the decision"
# The primary's process stops (SIGSTOP) for longer than the heartbeat
# timeout and the settle time, then goes on.  The secondary declares it
# lost but still sees its process in the group: alive, so it stands down;
# the resumed primary finds the secondary gone and, quorate, runs on.
# Exactly one side runs the VM, with every acknowledged write.
start_pair frozen
kill -STOP $PRI
secondary_stands_down "still alive in this partition"
kill -CONT $PRI
primary_runs_on
echo "frozen: $(grep -o 'NOT TAKING OVER.*' "$D/sec.log" | cut -c1-140); then the primary ran on"
end_pair

# -- a partition that heals while the primary decides ------------------------
scenario "a partition that heals mid-decision"
# The primary is isolated and starts deciding; it freezes (SIGSTOP) in
# the middle.  The secondary, quorate with the arbiter, fences and takes
# over.  The partition heals; the primary resumes in a quorate partition.
# Quorum alone would let it run on next to the replica (split brain): it
# must find the VM's token held by the side that took over, and stop.
start_pair heal
cluster_isolate p
wait_until 20 "the primary's decision to start" in_file "$D/pri.log" "until the cluster decides" ||
    fail "the primary did not start deciding"
kill -STOP $PRI
wait_until 30 "the secondary's takeover" in_file "$D/sec.log" FAILOVER || fail "the secondary did not take over"
cluster_heal || fail "the cluster did not heal"
kill -CONT $PRI
st=0; wait_exit $PRI 40 || st=$?; [ "$st" = 4 ] || fail "the primary did not stop its VM after the heal (exit $st, not 4): both sides ran it"
grep -q "holds the VM's token" "$D/pri.log" || fail "the primary did not say the secondary holds the VM"
grep -q "answering HELD" "$D/sec.log" || fail "the side that took over did not answer the claim"
alive $SEC || fail "the replica is not running"
v=$(value 2 10); [ "$v" = "$acked" ] || fail "the replica has '$v', acked $acked"
echo "heal: $(grep -o 'STOPPING the VM.*' "$D/pri.log" | cut -c1-220)"
end_pair

# -- only the replication link cut: both alive, one claim ----------------------
scenario "only the replication link cut"
# Corosync still joins the two (the stream runs on other addresses), so
# each sees the other alive.  The primary claims the VM's token; the
# secondary, deciding too, yields it and stands down: the primary runs on.
STREAM_IP=10.79.0.2 start_pair replication-cut
cluster_cut_replication p s
secondary_stands_down "claimed the VM's token first|still alive in this partition"
primary_runs_on
grep -Eq "yielded the VM's token|is not in this partition" "$D/pri.log" || fail "the primary ran on without the token"
echo "replication-cut: $(grep -o 'the VM runs on.*' "$D/pri.log" | cut -c1-220)"
end_pair

# -- the arbiter down, then the link cut: nobody can be sure -------------------
scenario "the arbiter down, then the link cut"
start_pair arbiter-down-then-cut
cluster_arbiter_down
sleep 4
cluster_cut p s
st=0; wait_exit $PRI 30 || st=$?; [ "$st" = 4 ] || fail "the primary did not stop its VM (exit $st, not 4)"
grep -q "no quorum" "$D/pri.log" || fail "the primary did not say why"
secondary_stands_down "no quorum"
if kv 3 1 "GET x" > /dev/null 2>&1; then fail "the VM still answers somewhere"; fi
echo "arbiter-down-then-cut: the VM runs nowhere;"
echo "  primary:   $(grep -o 'STOPPING the VM.*' "$D/pri.log" | cut -c1-200)"
echo "  secondary: $(grep -o 'NOT TAKING OVER.*' "$D/sec.log" | cut -c1-200)"
end_pair
echo "every partition: at most one side ran the VM, with every acknowledged write"

# -- fencing that fails: no takeover (no corosync needed) ---------------------
scenario "fencing that fails"
case=fence-fails; D="$TMP/$case"; mkdir -p "$D"
ip netns exec "$NS" "$REMUS" receive --listen 127.0.0.1:7851 --tap taps $HB \
    --name tguest --fence-cmd "echo trying >> $D/fence.out; exit 3" > "$D/sec.log" 2>&1 & SEC=$!; PIDS+=($SEC)
sleep 0.3
ip netns exec "$NS" "$REMUS" protect -i 20 --progress 0 $HB "$TMP/g.cfg" 127.0.0.1:7851 \
    > "$D/pri.log" 2>&1 & PRI=$!; PIDS+=($PRI)
kv 1 30 "INCR x" > /dev/null || fail "no acknowledged write"
kill -9 $PRI; wait $PRI 2>/dev/null || true
st=0; wait_exit $SEC 20 || st=$?; [ "$st" = 4 ] || fail "a failed fence command did not hold the takeover back (exit $st)"
grep -q "fence command failed (exit 3)" "$D/sec.log" || fail "the secondary did not say the fence failed"
grep -q trying "$D/fence.out" || fail "the fence command did not run"
if kv 3 1 "GET x" > /dev/null 2>&1; then fail "the VM answers although nobody may run it"; fi
echo "fence-fails: $(grep -o 'NOT TAKING OVER.*' "$D/sec.log" | cut -c1-160)"

# -- refusals ------------------------------------------------------------------
scenario "refusals"; case=refusals; D="$TMP/refusals"; mkdir -p "$D"
if out=$("$REMUS" receive --listen 127.0.0.1:7852 --quorum zookeeper 2>&1); then fail "--quorum zookeeper accepted"; fi
grep -q "not a quorum service" <<< "$out" || fail "no reason for --quorum zookeeper: $out"
if out=$("$REMUS" receive --listen 127.0.0.1:7852 --quorum corosync 2>&1); then fail "--quorum without --name accepted"; fi
grep -q "needs --name" <<< "$out" || fail "no reason for --quorum without --name: $out"
# A host that runs no corosync: namespaces of its own (network, for
# corosync's abstract sockets; mount, for a private /run), so that a corosync
# this machine may run does not answer.  protect refuses before any VM runs.
rc=0; out=$(unshare --net --mount sh -c 'mount -t tmpfs tmpfs /run && exec "$@"' sh \
            "$REMUS" protect --quorum corosync "$TMP/g.cfg" 127.0.0.1:7852 2>&1) || rc=$?
[ $rc = 1 ] || fail "protect --quorum without corosync: exit $rc: $(echo "$out" | tail -3)"
grep -q "cannot reach corosync" <<< "$out" || fail "no reason: $out"
echo "refused: $(echo "$out" | tail -1)"
