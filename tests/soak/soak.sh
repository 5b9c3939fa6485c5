#!/usr/bin/env bash
# tests/soak/soak.sh [N] [SEED]: N (default 1000) rounds of a protected KVM
# VM whose primary and secondary run in two host namespaces of a real
# corosync cluster (tests/lib/cluster.sh: corosync + corosync-qdevice on
# both, corosync-qnetd on a third host; protect/receive --quorum corosync,
# the secondary with a --fence-cmd), each round ending with one random
# fault:
#   kill-primary     kill -9 of the primary    -> the secondary takes over
#   kill-secondary   kill -9 of the secondary  -> the primary runs on alone
#   cut-link         primary-secondary traffic cut, both reach the arbiter
#                    -> exactly one side runs the VM (qnetd decides)
#   isolate-primary  the primary's host cut from both others
#                    -> the secondary takes over, the primary stops its VM
#   clean-stop       SIGINT to the primary     -> the secondary discards
# and checks, within bounded time, who runs the VM and that every write
# the client saw acknowledged is there.  Both sides running is a
# split-brain, no side running where one half held quorum a hang: both
# are failures.  Prints one line per round and the counts; exit 1 if any
# round lost an acknowledged write, split, hung or crashed.  `make soak`
# runs 1000 rounds; tests/integration/soak_short.sh a few.
N=${1:-1000}
SEED=${2:-$$}
. "$ROOT/tests/lib/kvm.sh"
. "$ROOT/tests/lib/cluster.sh"
set +e
RANDOM=$SEED
ns_setup tapp taps
trap 'cluster_down; cleanup' EXIT
cluster_up "$TMP/cluster" || exit 1
P="${CL}p" S="${CL}s"
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=2000 dirty_wss=500" 1
echo "tap_netns = $NS" >> "$TMP/g.cfg"
HB="--heartbeat 50 --heartbeat-timeout 1000"
Q="--quorum corosync --quorum-settle 8000"
events=(kill-primary kill-secondary cut-link isolate-primary clean-stop)
declare -A count
bad=0

value() {  # value CLIENT REQ -> the value of x, or empty
    kv "$1" "$2" "GET x" 2>/dev/null | awk '$2 == "OK" {print $3}'
}
waitlog() { local i; for i in $(seq 1 ${3:-100}); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
alive() { kill -0 "$1" 2>/dev/null; }
gone() { local i; for i in $(seq 1 ${2:-100}); do alive "$1" || return 0; sleep 0.1; done; return 1; }
check_value() {  # check_value WHO
    # Every acknowledged write must be there; a write whose reply the
    # client never saw may be there or not (at most the writes sent).
    v=$(value 2 $((writes + 1)))
    if [ -z "$v" ] || [ "$v" -lt "$acked" ] || [ "$v" -gt "$writes" ]; then
        outcome=lost-write; why="$1 has '$v', acked $acked of $writes"
    fi
}

echo "soak: $N rounds, seed $SEED"
t0=$(date +%s)
for round in $(seq 1 "$N"); do
    ev=${events[$((RANDOM % 5))]}
    [ $round -le 5 ] && ev=${events[$((round - 1))]}    # each fault at least once
    d="$TMP/r$round"; mkdir -p "$d"
    ip netns exec "$S" "$REMUS" receive --listen 10.78.0.2:7830 --name tguest \
        --tap taps --tap-netns "$NS" $HB $Q --fence-cmd "echo fenced >> $d/fence" \
        > "$d/sec.log" 2>&1 & SEC=$!
    sleep 0.2
    ip netns exec "$P" "$REMUS" protect -i $((10 + RANDOM % 40)) $HB $Q \
        --progress 0 "$TMP/g.cfg" 10.78.0.2:7830 > "$d/pri.log" 2>&1 & PRI=$!
    PIDS=($SEC $PRI)
    writes=$((1 + RANDOM % 20)); cmds=()
    for i in $(seq 1 $writes); do cmds+=("INCR x"); done
    acked=$(kv 1 1 "${cmds[@]}" 2>/dev/null | awk '$2 == "OK" {v=$3} END {print v+0}')
    sleep 0.$((RANDOM % 10))
    outcome="" why=""
    # The pair must be whole before the fault: under load a side can give
    # up on its own (e.g. a stall during the first full copy); such a round
    # tests nothing of the fault and is counted apart.
    if ! alive $SEC || ! alive $PRI || grep -q "secondary lost" "$d/pri.log"; then
        ev=none; outcome=lost-before-fault
        why="$(grep -h -m1 -E 'error|secondary lost' "$d/sec.log" "$d/pri.log" | head -1)"
    fi
    case $ev in
    kill-primary)
        kill -9 $PRI; wait $PRI 2>/dev/null
        if ! waitlog "$d/sec.log" FAILOVER 200; then outcome=hang; why="no failover"
        else outcome=failover; check_value replica; fi ;;
    kill-secondary)
        kill -9 $SEC; wait $SEC 2>/dev/null
        if ! waitlog "$d/pri.log" "runs on UNPROTECTED" 200; then outcome=hang; why="the primary did not run on"
        else outcome=primary-alone; check_value primary; fi ;;
    cut-link|isolate-primary)
        if [ $ev = cut-link ]; then cluster_cut p s; else cluster_isolate p; fi
        # Wait until both sides have decided (each at most ~settle + stable).
        for i in $(seq 1 250); do
            { grep -q "runs on UNPROTECTED" "$d/pri.log" || ! alive $PRI; } &&
            { grep -q "FAILOVER" "$d/sec.log" || ! alive $SEC; } && break
            sleep 0.1
        done
        pri_runs=0 sec_runs=0
        grep -q "runs on UNPROTECTED" "$d/pri.log" && alive $PRI && pri_runs=1
        grep -q "FAILOVER" "$d/sec.log" && alive $SEC && sec_runs=1
        if [ $pri_runs = 1 ] && [ $sec_runs = 1 ]; then outcome=split-brain; why="both sides run the VM"
        elif [ $pri_runs = 0 ] && [ $sec_runs = 0 ]; then outcome=hang; why="no side runs the VM though one half holds quorum"
        elif [ $ev = isolate-primary ] && [ $pri_runs = 1 ]; then outcome=wrong; why="the isolated primary ran on"
        elif [ $pri_runs = 1 ]; then outcome=primary-won; check_value primary
        else
            outcome=secondary-won
            grep -q fenced "$d/fence" 2>/dev/null || { outcome=wrong; why="took over without fencing"; }
            [ $outcome = secondary-won ] && check_value replica
        fi
        cluster_heal > "$d/heal.log" 2>&1 || { outcome=hang; why="the cluster did not heal"; } ;;
    clean-stop)
        kill -INT $PRI
        if ! gone $SEC 100; then outcome=hang; why="the secondary did not end"
        elif ! grep -q "the replica is discarded" "$d/sec.log"; then outcome=wrong; why="the secondary did not discard"
        else outcome=clean-stop; check_value primary; fi ;;
    esac
    # No process of ours may die of anything but our own signals.
    for f in "$d/sec.log" "$d/pri.log"; do
        if grep -qE "AddressSanitizer|runtime error|Segmentation|Aborted" "$f"; then outcome=crash; why="$(basename "$f")"; fi
    done
    kill -9 $SEC $PRI 2>/dev/null; wait $SEC $PRI 2>/dev/null
    count[$outcome]=$(( ${count[$outcome]:-0} + 1 ))
    case $outcome in
    failover|primary-alone|primary-won|secondary-won|clean-stop) rm -rf "$d" ;;
    lost-before-fault) echo "  round $round: the pair broke before the fault: $why" ;;
    *) bad=$((bad + 1)); echo "  round $round FAILED: $ev -> $outcome: $why (logs: $d)"; KEEP_TMP=1 ;;
    esac
    echo "round $round: $ev ($writes writes acked) -> $outcome"
done
echo "soak: $N rounds in $(( $(date +%s) - t0 )) s (seed $SEED):"
for k in failover primary-alone primary-won secondary-won clean-stop lost-before-fault split-brain lost-write hang crash wrong; do
    [ -n "${count[$k]:-}" ] && echo "  $k: ${count[$k]}"
done
echo "soak: $((N - bad)) good, $bad bad (a round that broke before its fault is neither)"
[ $bad = 0 ]
