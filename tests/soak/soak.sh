#!/usr/bin/env bash
# tests/soak/soak.sh [N] [SEED]: N (default 1000) rounds of a protected KVM
# VM whose primary and secondary run in two host namespaces of a real
# corosync cluster (tests/lib/cluster.sh: corosync + corosync-qdevice on
# both, corosync-qnetd on a third host; protect/receive --quorum corosync,
# the secondary with a --fence-cmd; both with --key-file, one key made by
# `remus keygen` per soak), each round ending with one fault:
#   kill-primary     kill -9 of the primary    -> the secondary takes over
#                                                 (the primary: SIGKILL)
#   kill-secondary   kill -9 of the secondary  -> the primary runs on alone
#                                                 (the secondary: SIGKILL)
#   cut-link         primary-secondary traffic cut, both reach the arbiter
#                    -> exactly one side runs the VM (qnetd decides), the
#                       other exits 4
#   isolate-primary  the primary's host cut from both others
#                    -> the secondary fences and takes over, the primary
#                       stops its VM (exit 4)
#   clean-stop       SIGINT to the primary     -> the secondary discards
#                       (exit 0), the primary runs on
#   kill-primary-sync    kill -9 of the primary during the initial sync of
#                    its disk (the secondary's chunk hashes just computed,
#                    going out; the primary has yet to hash its own image
#                    and send what differs)
#                    -> no takeover: the secondary, with no checkpoint,
#                       ends with an error (a kill that came after the
#                       first commit makes the round vacuous)
#   kill-secondary-sync  kill -9 of the secondary during the initial sync
#                    (the primary just found the differing chunks: they
#                    are going out; on a fast idle machine the 32 MiB may
#                    all be there already)
#                    -> the primary runs on alone; the client writes then
# Disk rounds: every even round and every *-sync round give the guest a
# replicated disk (its key-value data on it, so every client write is a
# disk write); the secondary's image starts either zeroed (a small initial
# sync) or, in the *-sync rounds, full of random bytes (every chunk
# differs: a long one).  In a disk round the side that runs also answers
# DISKCHECK (its disk agrees with its memory).
# Until every fault ran once, a round takes the first one that has not;
# then a random one.  A round is good only if the pair was whole before
# the fault (both alive, both logged their keyed session, nothing lost or
# failed over), the client had writes acknowledged, each process ended
# (or runs) as the fault implies -- any death by a signal we did not send,
# e.g. SIGSEGV or SIGABRT, is a crash whatever its log says, and so is a
# sanitizer report -- and the side that runs the VM holds every
# acknowledged write (and no more than the writes sent).  A round with no
# acknowledged write or a pair that broke before its fault tests nothing:
# it is counted vacuous, its fault not run.  Prints one line per round,
# the outcomes and how often each fault ran (`  fault NAME: ran N`, read
# by tests/integration/soak_short.sh); exit 1 if any round failed or vacuous
# rounds exceed SOAK_MAX_VACUOUS_PCT (default 5) percent of the rounds.
#   soak.sh --faults     prints every fault's name
#   SOAK_FAULTS="A B"    only these faults
# Test-only fault injection (the checker's negative controls), in the
# rounds listed in SOAK_INJECT_ROUNDS (default: every round):
#   SOAK_INJECT=no-writes      the client sends no write
#   SOAK_INJECT=break-pair     the secondary stopped (SIGSTOP) before the
#                              fault until the primary declares it lost
#   SOAK_INJECT=segv-survivor  kill -SEGV of the side that runs the VM,
#                              after its writes were checked
#   SOAK_INJECT=extra-ack      count one acknowledged write more than the
#                              client saw
FAULTS_ALL=(kill-primary kill-secondary cut-link isolate-primary clean-stop
            kill-primary-sync kill-secondary-sync)
if [ "${1:-}" = --faults ]; then echo "${FAULTS_ALL[*]}"; exit 0; fi
N=${1:-1000}
SEED=${2:-$$}
read -r -a faults <<< "${SOAK_FAULTS:-${FAULTS_ALL[*]}}"
for f in "${faults[@]}"; do
    case " ${FAULTS_ALL[*]} " in
    *" $f "*) ;;
    *) echo "soak: SOAK_FAULTS: unknown fault '$f' (faults: ${FAULTS_ALL[*]})"; exit 2 ;;
    esac
done
[ ${#faults[@]} -gt 0 ] || { echo "soak: SOAK_FAULTS names no fault"; exit 2; }
INJECT=${SOAK_INJECT:-}
INJECT_ROUNDS=${SOAK_INJECT_ROUNDS:-all}
case $INJECT in
''|no-writes|break-pair|segv-survivor|extra-ack) ;;
*) echo "soak: SOAK_INJECT: unknown '$INJECT' (no-writes break-pair segv-survivor extra-ack)"; exit 2 ;;
esac
MAX_VACUOUS_PCT=${SOAK_MAX_VACUOUS_PCT:-5}
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
cp "$TMP/g.cfg" "$TMP/gd.cfg"; echo "disk = $TMP/p.img" >> "$TMP/gd.cfg"
DISK_MIB=32
head -c ${DISK_MIB}M /dev/urandom > "$TMP/random.img"
HB="--heartbeat 50 --heartbeat-timeout 1000"
Q="--quorum corosync --quorum-settle 8000"
"$REMUS" keygen "$TMP/soak.key" || { echo "soak: remus keygen failed"; exit 1; }
KEY=(--key-file "$TMP/soak.key")
KEYED="authenticated and encrypted"
GOOD="failover primary-alone primary-won secondary-won clean-stop no-takeover"
declare -A count ran st
bad=0 vacuous=0

value() {  # value CLIENT REQ -> the value of x, or empty
    kv "$1" "$2" "GET x" 2>/dev/null | awk '$2 == "OK" {print $3}'
}
# waitlog FILE PATTERN [TENTHS]: PATTERN in FILE within TENTHS tenths of
# a second (default 100), times REMUS_TEST_SLOW; says so when not.
waitlog() { wait_until $(( (${3:-100} + 9) / 10 )) "'$2' in $1" in_file "$1" "$2"; }
# ended_or_took_over PID LOG: PID ended, or LOG says it took over
ended_or_took_over() { ! alive "$1" || grep -q "FAILOVER" "$2"; }
# both_decided: after a cut, the primary ran on or ended, and the
# secondary took over or ended
both_decided() {
    { grep -q "runs on UNPROTECTED" "$d/pri.log" || ! alive "$PRI"; } &&
        ended_or_took_over "$SEC" "$d/sec.log"
}
injected() {  # injected KIND: this round injects KIND
    [ "$INJECT" = "$1" ] || return 1
    [ "$INJECT_ROUNDS" = all ] || [[ " $INJECT_ROUNDS " == *" $round "* ]]
}
reap() {  # reap PID: st[PID] = its wait status (once it ended)
    if [ -n "${st[$1]:-}" ]; then return; fi
    wait "$1" 2>/dev/null; st[$1]=$?
}
check_value() {  # check_value WHO
    # Every acknowledged write must be there; a write whose reply the
    # client never saw may be there or not (at most the writes sent).
    local dc
    v=$(value 2 $((sent + 1)))
    if [ -z "$v" ] || [ "$v" -lt "$acked" ] || [ "$v" -gt "$sent" ]; then
        outcome=lost-write; why="$1 has '$v', acked $acked of $sent sent"
    elif [ $disk = 1 ]; then    # its disk agrees with its memory
        dc=$(kv 3 1 DISKCHECK 2>&1)
        case "$dc" in "1 OK disk=ok "*) ;; *) outcome=lost-write; why="$1's DISKCHECK: $dc" ;; esac
    fi
}
# sync_fault: the *-sync faults, right after both sides started: the kill
# lands in the initial sync of the disk.
sync_fault() {
    # (the kill lands when the sync's line came, or after the wait for it:
    # what came of it is judged below, not by set -e ending the soak)
    if [ $ev = kill-primary-sync ]; then
        waitlog "$d/sec.log" "chunks of 65536 bytes hashed" 100 || true
        kill -9 $PRI; reap $PRI
        want_pri=sigkill
        # it ends, or takes over (the kill came too late)
        wait_until 15 "the secondary to end or take over" \
            ended_or_took_over "$SEC" "$d/sec.log" || true
        if grep -q "FAILOVER" "$d/sec.log" ||
           { ! alive $SEC && ! grep -q "disk replica: 0 checkpoints applied" "$d/sec.log"; }; then
            outcome=vacuous; why="the kill came after the initial sync"
        elif alive $SEC; then
            outcome=hang; why="the secondary did not end"
        elif ! grep -q "secondary: error: " "$d/sec.log"; then
            outcome=wrong; why="the secondary ended without an error"
        else
            outcome=no-takeover
        fi
    else
        waitlog "$d/pri.log" "chunks differ from the secondary" 100 || true
        kill -9 $SEC; reap $SEC
        want_sec=sigkill want_pri=run
        if ! waitlog "$d/pri.log" "UNPROTECTED" 200; then outcome=hang; why="the primary did not run on"; fi
    fi
}
fail_round() {  # fail_round OUTCOME WHY: a crash beats every other failure
    case " $GOOD vacuous " in
    *" $outcome "*) outcome=$1; why=$2 ;;
    *) if [ "$1" = crash ] && [ "$outcome" != crash ]; then outcome=$1; why=$2; fi ;;
    esac
}
check_exit() {  # check_exit ROLE PID WANT (run | exit:N | sigkill | any)
    local role=$1 pid=$2 want=$3 s
    # A side that must end gets a few seconds to do so (one that does not
    # is this round's failure, told below: not this script's end by set -e).
    case $want in run|any) ;; *) gone "$pid" 5 || true ;; esac
    if alive "$pid"; then
        case $want in run|any) ;; *) fail_round wrong "the $role still runs (expected $want)" ;; esac
        return
    fi
    reap "$pid"; s=${st[$pid]}
    if [ "$s" -gt 128 ]; then
        if [ "$want" = sigkill ] && [ "$s" = 137 ]; then return; fi
        fail_round crash "the $role died of SIG$(kill -l $((s - 128)) 2>/dev/null) (status $s)"
    elif [ "$want" != any ] && [ "$want" != "exit:$s" ]; then
        fail_round wrong "the $role exited $s (expected $want)"
    fi
}

echo "soak: $N rounds, seed $SEED, faults: ${faults[*]}${INJECT:+, injecting $INJECT in rounds $INJECT_ROUNDS}"
t0=$(date +%s)
for round in $(seq 1 "$N"); do
    r=$((RANDOM % ${#faults[@]})); ev=${faults[$r]}
    for f in "${faults[@]}"; do if [ "${ran[$f]:-0}" = 0 ]; then ev=$f; break; fi; done
    d="$TMP/r$round"; mkdir -p "$d"
    st=()                                   # PIDs are reused across rounds
    outcome="" why=""
    want_pri=any want_sec=any
    disk=$(( (round + 1) % 2 )) cfg="$TMP/g.cfg" dopt=()
    case $ev in *-sync) disk=1 ;; esac
    if [ $disk = 1 ]; then
        # fresh images: the guest replays its disk's log at boot
        rm -f "$TMP/p.img" "$TMP/r.img" "$TMP/r.img.remus-dirty"
        truncate -s ${DISK_MIB}M "$TMP/p.img"
        case $ev in
        *-sync) cp "$TMP/random.img" "$TMP/r.img" ;;
        *) truncate -s ${DISK_MIB}M "$TMP/r.img" ;;
        esac
        cfg="$TMP/gd.cfg" dopt=(--disk "$TMP/r.img")
    fi
    ip netns exec "$S" "$REMUS" receive --listen 10.78.0.2:7830 --name tguest \
        --tap taps --tap-netns "$NS" $HB $Q "${KEY[@]}" "${dopt[@]}" \
        --fence-cmd "echo fenced >> $d/fence" > "$d/sec.log" 2>&1 & SEC=$!
    sleep 0.2
    ip netns exec "$P" "$REMUS" protect -i $((10 + RANDOM % 40)) $HB $Q \
        "${KEY[@]}" --progress 0 "$cfg" 10.78.0.2:7830 > "$d/pri.log" 2>&1 & PRI=$!
    PIDS=($SEC $PRI)
    case $ev in *-sync) sync_fault ;; esac
    writes=$((1 + RANDOM % 20)); cmds=()
    if injected no-writes || [ $ev = kill-primary-sync ]; then writes=0; fi
    for i in $(seq 1 $writes); do cmds+=("INCR x"); done
    # kvcli stops at the first request that got no reply: sent counts
    # the requests made, acked the OK replies (x = 1, 2, ... in order).
    sent=0 acked=0 last=0
    if [ $writes -gt 0 ]; then
        kv 1 1 "${cmds[@]}" > "$d/client.out" 2> "$d/client.err"; krc=$?
        sent=$(wc -l < "$d/client.out")
        if [ $krc = 1 ]; then sent=$((sent + 1)); fi
        acked=$(awk '$2 == "OK" {n++} END {print n+0}' "$d/client.out")
        last=$(awk '$2 == "OK" {v=$3} END {print v+0}' "$d/client.out")
    fi
    sleep 0.$((RANDOM % 10))
    if injected break-pair; then    # the primary loses its secondary
        kill -STOP $SEC
        waitlog "$d/pri.log" "secondary lost" 50 || true   # judged below
        kill -CONT $SEC
    fi
    # The round tests its fault only on a whole, keyed pair whose client
    # saw writes acknowledged: under load a side can give up on its own
    # (e.g. a stall during the first full copy); such a round is vacuous.
    broke=$(grep -h -m1 -E "^remus.*(error: |secondary lost|primary lost|FAILOVER|NOT TAKING OVER|UNPROTECTED)" \
            "$d/sec.log" "$d/pri.log" | head -1)
    if [ -n "$outcome" ]; then :    # a *-sync fault already ran (or failed)
    elif [ $ev = kill-secondary-sync ]; then
        if [ $acked = 0 ]; then why="no acknowledged write ($sent sent)"; fi
    elif [ $acked = 0 ]; then why="no acknowledged write ($sent sent)"
    elif ! alive $SEC; then why="the secondary ended before the fault"
    elif ! alive $PRI; then why="the primary ended before the fault"
    elif ! grep -q "replicating 'tguest'.*$KEYED" "$d/sec.log"; then why="the secondary logged no keyed replication"
    elif ! grep -q "protecting 'tguest'.*$KEYED" "$d/pri.log"; then why="the primary logged no keyed protection"
    elif [ -n "$broke" ]; then why="the pair broke before the fault: $broke"
    elif [ "$last" != "$acked" ]; then
        outcome=wrong; why="the client's $acked acknowledged INCRs ended at x=$last"
    fi
    if [ -n "$why" ] && [ -z "$outcome" ]; then outcome=vacuous; ev=none; fi
    if [ -n "$outcome" ] && [ "$outcome" != no-takeover ]; then ev=none; fi
    if injected extra-ack; then acked=$((acked + 1)); fi
    case $ev in
    kill-secondary-sync)
        outcome=primary-alone; check_value primary ;;
    kill-primary)
        kill -9 $PRI; reap $PRI
        want_pri=sigkill want_sec=run
        if ! waitlog "$d/sec.log" FAILOVER 200; then outcome=hang; why="no failover"
        else outcome=failover; check_value replica; fi ;;
    kill-secondary)
        kill -9 $SEC; reap $SEC
        want_sec=sigkill want_pri=run
        if ! waitlog "$d/pri.log" "runs on UNPROTECTED" 200; then outcome=hang; why="the primary did not run on"
        else outcome=primary-alone; check_value primary; fi ;;
    cut-link|isolate-primary)
        if [ $ev = cut-link ]; then cluster_cut p s; else cluster_isolate p; fi
        # Wait until both sides have decided (each at most ~settle + stable).
        wait_until 25 "both sides to decide" both_decided || true
        pri_runs=0 sec_runs=0
        if grep -q "runs on UNPROTECTED" "$d/pri.log" && alive $PRI; then pri_runs=1; fi
        if grep -q "FAILOVER" "$d/sec.log" && alive $SEC; then sec_runs=1; fi
        if [ $pri_runs = 1 ] && [ $sec_runs = 1 ]; then outcome=split-brain; why="both sides run the VM"
        elif [ $pri_runs = 0 ] && [ $sec_runs = 0 ]; then outcome=hang; why="no side runs the VM though one half holds quorum"
        elif [ $ev = isolate-primary ] && [ $pri_runs = 1 ]; then outcome=wrong; why="the isolated primary ran on"
        elif [ $pri_runs = 1 ]; then
            outcome=primary-won want_pri=run want_sec=exit:4
            check_value primary
        else
            outcome=secondary-won want_sec=run want_pri=exit:4
            grep -q fenced "$d/fence" 2>/dev/null || { outcome=wrong; why="took over without fencing"; }
            if [ $outcome = secondary-won ]; then check_value replica; fi
        fi
        cluster_heal > "$d/heal.log" 2>&1 || { outcome=hang; why="the cluster did not heal"; } ;;
    clean-stop)
        kill -INT $PRI
        want_pri=run want_sec=exit:0
        if ! gone $SEC 10; then outcome=hang; why="the secondary did not end"
        elif ! grep -q "the replica is discarded" "$d/sec.log"; then outcome=wrong; why="the secondary did not discard"
        else outcome=clean-stop; check_value primary; fi ;;
    esac
    if injected segv-survivor; then
        if [ $want_pri = run ]; then kill -SEGV $PRI; gone $PRI 5; fi
        if [ $want_sec = run ]; then kill -SEGV $SEC; gone $SEC 5; fi
    fi
    # Each process ends (or runs on) as its fault implies; no process of
    # ours may die of a signal we did not send, logged or not.
    check_exit primary $PRI $want_pri
    check_exit secondary $SEC $want_sec
    for f in "$d/sec.log" "$d/pri.log"; do
        if grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$f"; then
            fail_round crash "a sanitizer report in $(basename "$f")"
        fi
    done
    for p in $SEC $PRI; do      # what still runs (one that ended is reaped)
        [ -n "${st[$p]:-}" ] || { kill -9 $p 2>/dev/null; wait $p 2>/dev/null; }
    done
    count[$outcome]=$(( ${count[$outcome]:-0} + 1 ))
    [ $ev = none ] || ran[$ev]=$(( ${ran[$ev]:-0} + 1 ))
    case " $GOOD " in
    *" $outcome "*) rm -rf "$d" ;;
    *)  if [ $outcome = vacuous ]; then
            vacuous=$((vacuous + 1)); echo "  round $round is vacuous: $why (logs: $d)"
        else
            bad=$((bad + 1)); echo "  round $round FAILED: $ev -> $outcome: $why (logs: $d)"
        fi
        KEEP_TMP=1 ;;
    esac
    echo "round $round: $ev (writes sent $sent, acked $acked) -> $outcome"
done
echo "soak: $N rounds in $(( $(date +%s) - t0 )) s (seed $SEED):"
for k in $GOOD vacuous split-brain lost-write hang crash wrong; do
    if [ -n "${count[$k]:-}" ]; then echo "  $k: ${count[$k]}"; fi
done
for f in "${FAULTS_ALL[@]}"; do echo "  fault $f: ran ${ran[$f]:-0}"; done
good=$((N - bad - vacuous))
echo "soak: $good good, $bad bad, $vacuous vacuous (at most $MAX_VACUOUS_PCT% allowed)"
rc=0
[ $bad = 0 ] || rc=1
if [ $((vacuous * 100)) -gt $((N * MAX_VACUOUS_PCT)) ]; then
    echo "soak: FAILED: $vacuous vacuous rounds of $N exceed $MAX_VACUOUS_PCT%"; rc=1
fi
exit $rc
