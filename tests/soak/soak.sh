#!/usr/bin/env bash
# tests/soak/soak.sh [N] [SEED]: N (default 1000) rounds of a protected KVM
# VM whose primary and secondary run in two "host" namespaces joined by a
# replication link, each round ending with one random fault:
#   kill-primary    kill -9 of the primary   -> the secondary takes over
#   kill-secondary  kill -9 of the secondary -> the primary runs on alone
#   cut-link        the replication link goes down (both hosts live)
#   clean-stop      SIGINT to the primary    -> the secondary discards
# and checks, within bounded time, who runs the VM and that every write
# the client saw acknowledged is there.  Without a quorum arbiter a cut
# link leaves both sides running: counted as "split-brain" (the hardening
# issue's corosync quorum is what prevents it), then the primary is
# stopped and the replica must hold every acknowledged write.
# Prints one line per round and the counts; exit 1 if any round lost an
# acknowledged write, hung, or crashed.  `make soak` runs 1000 rounds;
# tests/integration/soak_short.sh a few.
N=${1:-1000}
SEED=${2:-$$}
. "$ROOT/tests/lib/kvm.sh"
set +e
RANDOM=$SEED
ns_setup tapp taps
P="${NS}p" S="${NS}s"
ip netns add "$P"; ip netns add "$S"
trap 'cleanup; ip netns del "$P" 2>/dev/null; ip netns del "$S" 2>/dev/null' EXIT
ip link add rsp$$ netns "$P" type veth peer name rss$$ netns "$S"
ip -n "$P" addr add 10.89.0.1/24 dev rsp$$; ip -n "$P" link set rsp$$ up
ip -n "$S" addr add 10.89.0.2/24 dev rss$$; ip -n "$S" link set rss$$ up
ip -n "$P" link set lo up; ip -n "$S" link set lo up
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=2000 dirty_wss=500" 1
echo "tap_netns = $NS" >> "$TMP/g.cfg"
HB="--heartbeat 50 --heartbeat-timeout 400"
events=(kill-primary kill-secondary cut-link clean-stop)
declare -A count
bad=0

value() {  # value CLIENT REQ -> the value of x, or empty
    kv "$1" "$2" "GET x" 2>/dev/null | awk '$2 == "OK" {print $3}'
}
waitlog() { local i; for i in $(seq 1 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
alive() { kill -0 "$1" 2>/dev/null; }
exited_with() { local rc=0; wait "$1" || rc=$?; echo $rc; }

echo "soak: $N rounds, seed $SEED"
t0=$(date +%s)
for round in $(seq 1 "$N"); do
    ev=${events[$((RANDOM % 4))]}
    [ $round -le 4 ] && ev=${events[$((round - 1))]}    # each fault at least once
    d="$TMP/r$round"; mkdir -p "$d"
    ip -n "$P" link set rsp$$ up
    ip netns exec "$S" "$REMUS" receive --listen 10.89.0.2:7830 --tap taps \
        --tap-netns "$NS" $HB > "$d/sec.log" 2>&1 & SEC=$!
    ip netns exec "$P" "$REMUS" protect -i $((10 + RANDOM % 40)) $HB \
        --progress 0 "$TMP/g.cfg" 10.89.0.2:7830 > "$d/pri.log" 2>&1 & PRI=$!
    PIDS=($SEC $PRI)
    writes=$((1 + RANDOM % 20)); cmds=()
    for i in $(seq 1 $writes); do cmds+=("INCR x"); done
    acked=$(kv 1 1 "${cmds[@]}" 2>/dev/null | awk '$2 == "OK" {v=$3} END {print v+0}')
    sleep 0.$((RANDOM % 10))
    outcome="" why=""
    case $ev in
    kill-primary)
        kill -9 $PRI; wait $PRI 2>/dev/null
        if ! waitlog "$d/sec.log" FAILOVER; then outcome=hang; why="no failover"
        else v=$(value 2 $((writes + 1)))
             [ "$v" = "$acked" ] && outcome=failover || { outcome=lost-write; why="replica has '$v', acked $acked"; }
        fi ;;
    kill-secondary)
        kill -9 $SEC; wait $SEC 2>/dev/null
        if ! waitlog "$d/pri.log" UNPROTECTED; then outcome=hang; why="the primary did not notice"
        else v=$(value 2 $((writes + 1)))
             [ "$v" = "$acked" ] && outcome=primary-alone || { outcome=lost-write; why="primary has '$v', acked $acked"; }
        fi ;;
    cut-link)
        ip -n "$P" link set rsp$$ down
        if ! waitlog "$d/sec.log" FAILOVER || ! waitlog "$d/pri.log" UNPROTECTED; then
            outcome=hang; why="no reaction to the cut"
        else kill -9 $PRI; wait $PRI 2>/dev/null
             v=$(value 2 $((writes + 1)))
             [ "$v" = "$acked" ] && outcome=split-brain || { outcome=lost-write; why="replica has '$v', acked $acked"; }
        fi ;;
    clean-stop)
        kill -INT $PRI
        rc=$(timeout 10 bash -c "while kill -0 $SEC 2>/dev/null; do sleep 0.1; done; echo done")
        if [ "$rc" != done ]; then outcome=hang; why="the secondary did not end"
        elif ! grep -q "the replica is discarded" "$d/sec.log"; then outcome=wrong; why="the secondary did not discard"
        else v=$(value 2 $((writes + 1)))
             [ "$v" = "$acked" ] && outcome=clean-stop || { outcome=lost-write; why="primary has '$v', acked $acked"; }
        fi ;;
    esac
    # No process of ours may die of anything but our own signals.
    for f in "$d/sec.log" "$d/pri.log"; do
        if grep -qE "AddressSanitizer|runtime error|Segmentation|Aborted" "$f"; then outcome=crash; why="$(basename "$f")"; fi
    done
    kill -9 $SEC $PRI 2>/dev/null; wait $SEC $PRI 2>/dev/null
    count[$outcome]=$(( ${count[$outcome]:-0} + 1 ))
    case $outcome in
    failover|primary-alone|split-brain|clean-stop) rm -rf "$d" ;;
    *) bad=$((bad + 1)); echo "  round $round FAILED: $ev -> $outcome: $why (logs: $d)"; KEEP_TMP=1 ;;
    esac
    echo "round $round: $ev ($writes writes acked) -> $outcome"
done
echo "soak: $N rounds in $(( $(date +%s) - t0 )) s (seed $SEED):"
for k in failover primary-alone split-brain clean-stop lost-write hang crash wrong; do
    [ -n "${count[$k]:-}" ] && echo "  $k: ${count[$k]}"
done
echo "soak: $((N - bad)) good, $bad bad"
[ $bad = 0 ]
