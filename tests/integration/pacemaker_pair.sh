#!/usr/bin/env bash
# A protection pair run by a real Pacemaker cluster: corosync + qdevice on
# two host namespaces, qnetd on a third (tests/lib/cluster.sh), Pacemaker
# on both nodes, the OCF agent ocf/remus as a promotable clone.  Pacemaker
# starts the pair (the VM runs on one node, protected to the other), moves
# the promoted role to the other node (`crm_resource --move --promoted`:
# demote = handover, promote), and stops it; every acknowledged write
# survives the move.
. "$ROOT/tests/lib/kvm.sh"
. "$ROOT/tests/lib/cluster.sh"
for b in pacemakerd crm_mon cibadmin crm_resource; do
    command -v $b >/dev/null || { echo "$b is missing (make deps: pacemaker)"; exit 1; }
done
ns_setup tapa tapb
guest_cfg "$TMP/g.cfg" tapa "dirty_rate=2000 dirty_wss=500" 1
trap 'cluster_down; cleanup' EXIT
cluster_up "$TMP/cluster" || exit 1
cluster_pacemaker_up || exit 1
echo "Pacemaker runs on both nodes"

cl_pcmk p crm_attribute --type crm_config --name stonith-enabled --update false
# A monitor's bound, scaled (tests/lib/wait.sh): under TCG one crm_attribute
# of the agent's takes seconds, and a monitor over its bound makes
# Pacemaker restart the instance (a timed-out monitor on the unpromoted
# node restarted its receiver just before a move, 2026-12-06).
MON_S=$(( $(slow_ms 20000) / 1000 ))
cl_pcmk p cibadmin --create -o resources --xml-text "
<clone id=\"vm-clone\">
  <meta_attributes id=\"vm-clone-meta\">
    <nvpair id=\"vm-clone-promotable\" name=\"promotable\" value=\"true\"/>
    <nvpair id=\"vm-clone-pmax\" name=\"promoted-max\" value=\"1\"/>
    <nvpair id=\"vm-clone-cmax\" name=\"clone-max\" value=\"2\"/>
    <nvpair id=\"vm-clone-nmax\" name=\"clone-node-max\" value=\"1\"/>
  </meta_attributes>
  <primitive id=\"vm\" class=\"ocf\" provider=\"remus\" type=\"remus\">
    <instance_attributes id=\"vm-ia\">
      <nvpair id=\"vm-name\" name=\"name\" value=\"tguest\"/>
      <nvpair id=\"vm-config\" name=\"config\" value=\"$TMP/g.cfg\"/>
      <nvpair id=\"vm-nodes\" name=\"nodes\" value=\"hostp=10.78.0.1:7790 hosts=10.78.0.2:7790\"/>
      <nvpair id=\"vm-tap\" name=\"tap\" value=\"hostp=tapa hosts=tapb\"/>
      <nvpair id=\"vm-tapns\" name=\"tap_netns\" value=\"$NS\"/>
      <nvpair id=\"vm-binary\" name=\"binary\" value=\"$REMUS\"/>
      <nvpair id=\"vm-key\" name=\"key_file\" value=\"$REMUS_KEY_FILE\"/>
      <nvpair id=\"vm-quorum\" name=\"quorum\" value=\"true\"/>
      <nvpair id=\"vm-interval\" name=\"interval\" value=\"20\"/>
      <nvpair id=\"vm-hb\" name=\"heartbeat\" value=\"50\"/>
      <nvpair id=\"vm-hbt\" name=\"heartbeat_timeout\" value=\"$(slow_ms 400)\"/>
    </instance_attributes>
    <operations>
      <op id=\"vm-start\" name=\"start\" interval=\"0\" timeout=\"30s\"/>
      <op id=\"vm-stop\" name=\"stop\" interval=\"0\" timeout=\"60s\"/>
      <op id=\"vm-promote\" name=\"promote\" interval=\"0\" timeout=\"60s\"/>
      <op id=\"vm-demote\" name=\"demote\" interval=\"0\" timeout=\"60s\" on-fail=\"block\"/>
      <op id=\"vm-mon-p\" name=\"monitor\" interval=\"2s\" role=\"Promoted\" timeout=\"${MON_S}s\"/>
      <op id=\"vm-mon-u\" name=\"monitor\" interval=\"3s\" role=\"Unpromoted\" timeout=\"${MON_S}s\"/>
    </operations>
  </primitive>
</clone>"

promoted_in() { awk '/Promoted:/ {gsub(/[\[\]]/, ""); print $NF}' | head -n 1; }
show() { cl_pcmk p crm_mon -1 2>&1 | sed 's/^/  | /'; }
promoted_with_replica() {  # promoted_with_replica [NODE]: sets $prom
    local mon   # one crm_mon a poll: under TCG each takes seconds
    mon=$(cl_pcmk p crm_mon -1 2>/dev/null) || return 1
    prom=$(printf '%s\n' "$mon" | promoted_in)
    [ -n "$prom" ] && { [ -z "${1:-}" ] || [ "$prom" = "$1" ]; } &&
        printf '%s\n' "$mon" | grep -q "Unpromoted: \["
}
# Bounded by the clock (wait_clock): under TCG each crm_mon takes seconds.
wait_promoted() {  # wait_promoted [NODE] -> promoted node in $prom
    if wait_clock 90 "a promoted instance${1:+ on $1} and an unpromoted one" \
        promoted_with_replica "$@"; then return 0; fi
    show; return 1
}
wait_promoted || exit 1
echo "started: the VM runs on $prom"
acked=$(kv 1 1 "INCR a" "INCR a" "INCR a" | awk '$2 == "OK" {v=$3} END {print v+0}')
[ "$acked" = 3 ] || { echo "no acknowledged writes"; show; exit 1; }
# The unpromoted node must hold the replica before the move.
if [ "$prom" = hostp ]; then other=hosts; else other=hostp; fi
holds_replica() { cl_pcmk ${other#host} sh -c 'grep -q "\"state\": \"replica\"" /run/remus/tguest.secondary.status.json' 2>/dev/null; }
# node_logs NODE: what NODE's run directory, status files and agent logs say
node_logs() {
    echo "  $1:"
    cl_pcmk ${1#host} sh -c 'ls -l /run/remus; for f in /run/remus/*.json /run/resource-agents/remus/tguest/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 25 "$f"; }; done' 2>&1 | sed 's/^/  | /'
}
# (bounded by the clock: under TCG each check takes long; when it fails,
# what both nodes' status files and agent logs hold)
wait_clock 10 "$other holds the replica" holds_replica ||
    { show; node_logs "$prom"; node_logs "$other"; exit 1; }

t0=$(date +%s%N)
cl_pcmk p crm_resource --resource vm-clone --move --promoted --node "$other" > /dev/null
wait_promoted "$other" || exit 1
v=$(kv 2 4 "GET a" | awk '$2 == "OK" {print $3}')
t1=$(date +%s%N)
[ "$v" = "$acked" ] || { echo "after the move the VM has '$v', acked $acked"; show; node_logs hostp; node_logs hosts; exit 1; }
echo "moved to $other by Pacemaker in $(( (t1 - t0) / 1000000 )) ms with every acknowledged write"
kv 3 5 "INCR a" | grep -q " OK 4 " || { echo "no acknowledged write after the move"; exit 1; }

cl_pcmk p crm_resource --resource vm-clone --meta --set-parameter target-role --parameter-value Stopped > /dev/null
# Gone: no instance runs, nor is one on its way (an instance Stopping,
# Demoting, ... is listed by itself, without "Promoted:"/"Unpromoted:").
pair_gone() {
    local mon
    mon=$(cl_pcmk p crm_mon -1 2>/dev/null) || return 1
    ! printf '%s\n' "$mon" | grep -Eq "Promoted:|Unpromoted:|Started:|Stopping|Demoting|Promoting|Starting"
}
if ! wait_clock 90 "Pacemaker to stop the pair" pair_gone; then
    echo "the pair did not stop"; show; node_logs hostp; node_logs hosts; exit 1
fi
if kv 4 6 "GET a" > /dev/null 2>&1; then echo "the VM still answers after the stop"; exit 1; fi
# A failed action of the agent's during the run is shown (not judged).
mon=$(cl_pcmk p crm_mon -1 2>&1 || true)
if printf '%s\n' "$mon" | grep -q "Failed Resource Actions"; then
    echo "note: Pacemaker recorded failed actions:"
    printf '%s\n' "$mon" | grep -A4 "Failed Resource Actions" | sed 's/^/  | /'
    node_logs hostp; node_logs hosts
fi
echo "stopped by Pacemaker"
