#!/bin/sh
# The Pacemaker agent (ocf/remus) manages a Xen pair: two "nodes" in this
# dom0 (run and state directories of their own, replica domains named
# apart), driven action by action as Pacemaker drives a promotable clone:
# start both (two replicas), promote A (the domain, started and booted by
# the scenario, protected to B), kill B's receiver and restart B (A's
# protect holds the domain, A's monitor protects it to B again), move the
# promoted role to B (demote A = handover,
# promote B), B's monitor protects it back to A (reprotect, full resync),
# B's node fails (its holder killed): A takes over, B's monitor fails and
# its stop destroys B's domain; A's stop destroys A's: no domain left.  The guest counts on, same boot, through the move.
set -e
. /payload/scenario-lib.sh
R=/payload/remus
export OCF_ROOT=/payload/ocf
AGENT=/payload/ocf/resource.d/remus/remus
clog=/var/log/xen/console
NODES="nodeA=127.0.0.1:7081 nodeB=127.0.0.1:7082"
ip link set lo up
$R keygen /tmp/lab.key
cat > /tmp/labguest.vm <<EOF
# the VM as remus knows it: a Xen domain, its xl config for replicas
name = "labguest"
backend = xen
xl_config = /payload/guest-net.cfg
EOF
fail() { echo "FAIL: $*"; for f in /tmp/ra-*.log /tmp/node*/state/labguest/*.log; do
         echo "--- $f"; tail -15 "$f" 2>/dev/null; done; xl list; exit 1; }
# ra NODE ACTION: the agent as Pacemaker runs it on NODE; prints its rc.
ra() {
    _rc=0
    OCF_RESOURCE_INSTANCE=labguest __OCF_ACTION=$2 \
    OCF_RESKEY_CRM_meta_on_node=$1 OCF_RESKEY_CRM_meta_interval=10000 \
    OCF_RESKEY_name=labguest OCF_RESKEY_config=/tmp/labguest.vm \
    OCF_RESKEY_nodes="$NODES" OCF_RESKEY_binary=$R \
    OCF_RESKEY_replica_name="nodeA=labguest--rA nodeB=labguest--rB" \
    OCF_RESKEY_interval=500 OCF_RESKEY_heartbeat=200 OCF_RESKEY_heartbeat_timeout=4000 \
    OCF_RESKEY_run_dir=/tmp/$1/run OCF_RESKEY_state_dir=/tmp/$1/state \
    OCF_RESKEY_key_file=/tmp/lab.key \
        $AGENT "$2" >> /tmp/ra-$1.log 2>&1 || _rc=$?
    echo $_rc
}
expect() {  # expect NODE ACTION RC
    _t0=$(date +%s); _got=$(ra "$1" "$2")
    echo "$1 $2 -> $_got ($(( $(date +%s) - _t0 )) s)"
    [ "$_got" = "$3" ] || fail "$2 on $1 returned $_got, expected $3"
}
# wait_state NODE ROLE STATES SECS: until NODE's ROLE status file says
# one of STATES (an extended regex: a|b); a primary that reached "unprotected" or "stopped" instead never
# gets there (its protect has ended): fails at once, not after SECS.
wait_state() {
    for _i in $(seq 1 "$4"); do
        if grep -Eq "\"state\": \"($3)\"" /tmp/$1/run/labguest.$2.status.json 2>/dev/null; then return 0; fi
        if [ "$2" = primary ] &&
           grep -Eq '"state": "(unprotected|stopped)"' /tmp/$1/run/labguest.$2.status.json 2>/dev/null; then
            fail "$1's $2 status is '$(sed -n 's/.*"state": "\([a-z-]*\)".*/\1/p' /tmp/$1/run/labguest.$2.status.json)', not '$3': its protection ended"
        fi
        sleep 1
    done
    fail "$1's $2 status is not '$3' after $4 s"
}
guest_log() { ls -t $clog/guest-labguest*.log 2>/dev/null | head -1; }
# monitor_protects NODE WHY: NODE's monitor, as Pacemaker repeats it, until
# NODE's primary protects (its reprotect runs in the background); else
# fail WHY.
monitor_protects() {
    for _i in $(seq 1 40); do
        ra "$1" monitor > /dev/null
        if grep -q '"state": "protecting"' /tmp/$1/run/labguest.primary.status.json 2>/dev/null; then return 0; fi
        sleep 3
    done
    fail "$2"
}

expect nodeA monitor 7
op_begin "agent start" new
expect nodeB start 0
wait_state nodeB secondary waiting 120
expect nodeA start 0
wait_state nodeA secondary waiting 120
op_end "agent start" new
xl list
expect nodeA monitor 0
# The domain is started here and left to boot before A's promote protects
# it (the agent's promote finds it running; with none it would `xl
# create` it itself): under TCG a guest whose log-dirty is enabled in its
# first seconds (boot, or just resumed) may triple-fault on its own
# (lab/xen/README.md, "Spontaneous deaths").
create_guest /payload/guest-net.cfg labguest
dom=$(xl domid labguest)
wait_counter $clog/guest-labguest.log 4 120
op_begin "agent promote" all
expect nodeA promote 0
wait_state nodeA primary protecting 120
wait_state nodeB secondary replica 120
op_end "agent promote" all
expect nodeA monitor 8
expect nodeB monitor 0
[ "$(cat /tmp/nodeA/state/labguest/domid)" = "$dom" ] || fail "A does not remember domain $dom"
wait_counter $clog/guest-labguest.log 6 120

# B's receiver dies (its node restarts, say): A's protect loses it and
# holds its domain, which runs on unprotected; Pacemaker restarts B (its
# stop destroys the replica domain the dead receiver left, which would
# keep the next receiver from starting); A's monitor protects the domain
# to B again.
sleep 3
before=$(mark $clog/guest-labguest.log)
op_begin "restart B's receiver" all
kill -9 "$(cat /tmp/nodeB/state/labguest/receive.pid)"
for _i in $(seq 1 60); do
    if grep -q '"state": "unprotected"' /tmp/nodeA/run/labguest.primary.status.json 2>/dev/null; then break; fi
    sleep 1
done
grep -q '"state": "unprotected"' /tmp/nodeA/run/labguest.primary.status.json ||
    fail "A's protection did not see B's receiver go"
kill -0 "$(cat /tmp/nodeA/state/labguest/protect.pid)" 2>/dev/null ||
    fail "A's protect ended with its secondary: nothing holds the domain to protect it again"
expect nodeA monitor 8
expect nodeB monitor 1
expect nodeB stop 0
if xl domid labguest--rB > /dev/null 2>&1; then fail "B's stop left the replica domain of its dead receiver"; fi
expect nodeB start 0
wait_state nodeB secondary waiting 120
monitor_protects nodeA "A's monitor did not protect the domain to B again"
wait_state nodeB secondary replica 120
op_end "restart B's receiver" all
expect nodeA monitor 8
expect nodeB monitor 0
[ "$(xl domid labguest)" = "$dom" ] || fail "labguest is not domain $dom any more"
counts_on "$(guest_log)" "$before" "B's restart" || fail "the guest does not count on through B's restart"
echo "B restarted: A protects labguest to it again: $(tail -1 /tmp/nodeA/state/labguest/reprotect.log)"
sleep 3
before=$(mark $clog/guest-labguest.log)

# The move: demote A (handover), promote B (its replica took over)
op_begin "agent move A -> B" all
expect nodeA demote 0
expect nodeB promote 0
op_end "agent move A -> B" all
xl list
domB=$(xl domid labguest) || fail "no labguest after the move"
[ "$domB" != "$dom" ] || fail "labguest is still A's domain"
[ "$(cat /tmp/nodeB/state/labguest/domid 2>/dev/null)" = "$domB" ] || fail "B does not remember domain $domB"
[ ! -e /tmp/nodeA/state/labguest/domid ] || fail "A still remembers a domain after handing it over"
# The guest runs on at B (and has left its resume) before B's monitor
# protects it back: see the note on log-dirty above.
counts_on "$(guest_log)" "$before" "the move to B" || fail "the guest does not count on at B"
expect nodeB monitor 8
expect nodeA monitor 0
# B's monitor protects it back to A (A's demote started A's receiver; the
# monitor above may have begun it already, in the background)
wait_state nodeA secondary "waiting|syncing|replica" 120
monitor_protects nodeB "B's monitor did not protect the VM back to A"
wait_state nodeA secondary replica 120
echo "B protects labguest to A again: $(tail -1 /tmp/nodeB/state/labguest/reprotect.log)"

# B's node fails: its holder is killed (the domain runs on by itself, its
# output held by the plug nobody releases).  A's replica takes over; B's
# monitor fails and Pacemaker's stop of B destroys B's domain.
op_begin "kill B's holder" all
kill -9 "$(cat /tmp/nodeB/state/labguest/receive.pid)"
sleep 1
xl domname "$domB" > /dev/null 2>&1 || fail "B's domain died with its holder"
expect nodeB monitor 1
wait_state nodeA secondary failed-over 90
expect nodeA monitor 8
domA=$(cat /tmp/nodeA/state/labguest/domid 2>/dev/null)
[ -n "$domA" ] && [ "$domA" != "$domB" ] || fail "A remembers domain '$domA' (B's is $domB)"
expect nodeB stop 0
if xl domname "$domB" > /dev/null 2>&1; then fail "B's stop left domain $domB running"; fi
expect nodeB monitor 7
xl list
expect nodeA stop 0
op_end "kill B's holder" all
if xl domname "$domA" > /dev/null 2>&1; then fail "A's stop left domain $domA running"; fi
expect nodeA monitor 7
xl list
left=$(xl list | awk 'NR > 2 {print $1}')
[ -z "$left" ] || fail "domains left after both stops: $left"
echo "xenocf: the agent started a Xen pair, cold-started and protected the domain, moved it by handover (the guest counted on), protected it back, failed a domain without its holder, and stopped everything"
