#!/usr/bin/env bash
# Xen output buffering on this host's kernel, in network namespaces:
# `remus netbuf check` on a veth end standing in for a Xen VIF.  What the
# host kernel has (IFB, ingress, u32, mirred) is exercised for real:
# traffic of every protocol entering the VIF (IPv4 ICMP, ARP, IPv6) goes
# through the IFB; the plug qdisc holds, releases and discards epochs (on a
# kernel without sch_plug: the refusal names it, nothing is left); teardown
# (normal, SIGTERM) leaves no IFB and no qdisc; what a kill -9 leaves is
# removed by `remus netbuf cleanup` and by the next setup.
set -euo pipefail
A="rmnbA$$"; B="rmnbB$$"
TMP=$(mktemp -d /tmp/remus-netbuf.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$A" 2>/dev/null || true
    ip netns del "$B" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
NA() { ip netns exec "$A" "$@"; }
NB() { ip netns exec "$B" "$@"; }
. "$ROOT/tests/lib/wait.sh"
ip netns add "$A"; ip netns add "$B"
NA ip link set lo up; NB ip link set lo up
NA ip link add vif1.0 type veth peer name guest0
NA ip link set guest0 netns "$B"
NA ip addr add 10.78.0.1/24 dev vif1.0; NA ip link set vif1.0 up
NB ip addr add 10.78.0.2/24 dev guest0; NB ip link set guest0 up
# "the guest" (namespace B) sends into vif1.0: that is vif1.0's ingress
no_leftovers() {   # no IFB, no ingress qdisc on the VIF
    if NA ip -o link show type ifb | grep -q .; then
        echo "an IFB device is left: $(NA ip -o link show type ifb)"; return 1
    fi
    if NA tc qdisc show dev vif1.0 | grep -q ingress; then
        echo "an ingress qdisc is left on vif1.0"; return 1
    fi
}
ifb_rx() { NA cat "/sys/class/net/$1/statistics/rx_packets"; }

# 1. The redirect (no plug): set up, hold, inspect, traffic flows via the IFB
scenario "The redirect (no plug)"
ip netns exec "$A" "$REMUS" netbuf check --no-plug --hold 20 vif1.0 > "$TMP/hold.log" 2>&1 & PIDS+=($!)
wait_until 5 "the IFB's name in the log" in_file "$TMP/hold.log" rmifb
cat "$TMP/hold.log"
ifb=$(NA ip -o link show type ifb | awk -F': ' '{print $2}' | cut -d@ -f1)
[ -n "$ifb" ] || { echo "no IFB device was created"; exit 1; }
NA ip -d link show "$ifb" | grep -q "alias remus-netbuf:vif1.0:" || { echo "the IFB is not claimed"; NA ip -d link show "$ifb"; exit 1; }
NA ip link show "$ifb" | grep -q "UP" || { echo "the IFB is not up"; exit 1; }
NA tc qdisc show dev vif1.0 | grep -q "qdisc ingress ffff:" || { echo "no ingress qdisc"; exit 1; }
filt=$(NA tc filter show dev vif1.0 ingress)
echo "$filt"
grep -q "protocol all" <<< "$filt" || { echo "the filter is not for every protocol"; exit 1; }
grep -q "u32" <<< "$filt" || { echo "not a u32 filter"; exit 1; }
grep -q "match 00000000/00000000 at 0" <<< "$filt" || { echo "not a match-all key"; exit 1; }
grep -q "Egress Redirect to device $ifb" <<< "$filt" || { echo "no mirred redirect to $ifb"; exit 1; }
r0=$(ifb_rx "$ifb")
NB ping -c 5 -i 0.2 -W 2 10.78.0.1 > "$TMP/ping4.log" || { cat "$TMP/ping4.log"; echo "IPv4 does not pass the redirect"; exit 1; }
r1=$(ifb_rx "$ifb")
NB ip neigh flush dev guest0
NB arping -c 2 -w 3 -I guest0 10.78.0.1 > /dev/null 2>&1 || NB ping -c 1 -W 2 10.78.0.1 > /dev/null
ll=$(NA ip -6 -o addr show dev vif1.0 scope link | awk '{print $4}' | cut -d/ -f1)
for _ in $(seq 1 30); do NB ip -6 addr show dev guest0 | grep -q tentative || break; sleep 0.1; done
NB ping -6 -c 3 -i 0.2 -W 2 "$ll%guest0" > "$TMP/ping6.log" 2>&1 || { cat "$TMP/ping6.log"; echo "IPv6 does not pass the redirect"; exit 1; }
r2=$(ifb_rx "$ifb")
echo "IFB $ifb received: $((r1 - r0)) packets for 5 IPv4 pings, $((r2 - r1)) for ARP + 3 IPv6 pings"
[ $((r1 - r0)) -ge 5 ] || { echo "the IPv4 packets did not go through the IFB"; exit 1; }
[ $((r2 - r1)) -ge 4 ] || { echo "non-IPv4 packets did not go through the IFB"; exit 1; }
# SIGTERM: a clean teardown
kill -TERM "${PIDS[-1]}"; rc=0; wait "${PIDS[-1]}" || rc=$?
[ $rc = 0 ] || { echo "check did not exit 0 on SIGTERM (exit $rc)"; cat "$TMP/hold.log"; exit 1; }
grep -q "torn down" "$TMP/hold.log"
no_leftovers
echo "teardown after SIGTERM: nothing left"

# 2. The plug step.  On a kernel with sch_plug (stock Debian 12's has it)
# the plug itself is tested (tests/support/plug_steps.sh: what the VIF
# receives is held, an ended epoch is let out by a release and only then, a
# discard drops what is held).  On a kernel without it, the refusal must
# name sch_plug.
scenario "The plug step"
have_plug() {   # can this kernel make a plug qdisc at all? (not remus's code)
    local rc=0
    NA ip link add rmplugt type veth peer name rmplugu || { echo "cannot make a veth pair"; exit 1; }
    NA tc qdisc add dev rmplugt root plug 2>/dev/null || rc=1
    NA ip link del rmplugt || { echo "cannot remove the veth pair"; exit 1; }
    return $rc
}
if have_plug; then
    echo "this kernel has sch_plug: testing the plug itself"
    bash "$ROOT/tests/support/plug_steps.sh" "$REMUS" "$A" "$B" vif1.0 guest0 10.78.0.1 "$TMP/plug" ||
        { echo "the plug does not hold, release or discard as it must"; exit 1; }
    no_leftovers
    echo "sch_plug: nothing left"
else
    if NA "$REMUS" netbuf check vif1.0 > "$TMP/plug.log" 2>&1; then
        echo "remus accepted a plug qdisc on a kernel that makes none"; cat "$TMP/plug.log"; exit 1
    fi
    cat "$TMP/plug.log"
    grep -q "no 'plug' qdisc (CONFIG_NET_SCH_PLUG, module sch_plug)" "$TMP/plug.log" || { echo "the refusal does not name sch_plug"; exit 1; }
    no_leftovers
    echo "this kernel has no sch_plug: the refusal names it, nothing left"
fi

# 3. A run killed with -9 leaves its setup; cleanup removes it
scenario "A run killed with -9 leaves its setup; cleanup removes it"
ip netns exec "$A" "$REMUS" netbuf check --no-plug --hold 30 vif1.0 > "$TMP/k.log" 2>&1 & K=$!; PIDS+=($K)
wait_until 5 "the IFB's name in the log" in_file "$TMP/k.log" rmifb
kill -9 $K; wait $K 2>/dev/null || true
NA ip -o link show type ifb | grep -q . || { echo "kill -9 left nothing to clean up?"; exit 1; }
NA "$REMUS" netbuf cleanup | tee "$TMP/c.log"
grep -q "1 stale setup removed" "$TMP/c.log"
no_leftovers
# ... and the next setup removes a dead run's leftovers by itself
ip netns exec "$A" "$REMUS" netbuf check --no-plug --hold 30 vif1.0 > "$TMP/k2.log" 2>&1 & K=$!; PIDS+=($K)
wait_until 5 "the IFB's name in the log" in_file "$TMP/k2.log" rmifb
kill -9 $K; wait $K 2>/dev/null || true
NA "$REMUS" netbuf check --no-plug vif1.0 > "$TMP/k3.log" 2>&1 || { cat "$TMP/k3.log"; exit 1; }
no_leftovers
echo "stale setups: removed by cleanup and by the next run"

# 4. Refusals
scenario "Refusals"
if NA "$REMUS" netbuf check --no-plug nosuchvif0 2> "$TMP/e1"; then exit 1; fi
grep -q "no network interface 'nosuchvif0'" "$TMP/e1"
if NA "$REMUS" netbuf check --no-plug --ifb vif1.0 vif1.0 2> "$TMP/e2"; then exit 1; fi
grep -q "'vif1.0' is not an IFB device" "$TMP/e2"
no_leftovers
if "$REMUS" netbuf frobnicate 2> "$TMP/e3"; then exit 1; fi
grep -q "unknown action 'frobnicate'" "$TMP/e3"
echo "refusals: $(cat "$TMP/e1")"
