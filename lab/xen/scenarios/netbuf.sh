#!/bin/sh
# netbuf on a real plug qdisc (dom0's kernel has sch_plug): a veth end
# stands in for the VM's VIF.  Under `remus netbuf check --epochs` the
# VIF's input is held until each 100 ms epoch's release, so pings through
# it take tens of ms; with --no-plug they take well under a few ms; the
# plug qdisc is on the IFB while it runs; nothing is left afterwards.
set -e
R=/payload/remus
ip netns add nbA; ip netns add nbB
ip -n nbA link set lo up; ip -n nbB link set lo up
ip -n nbA link add vif9.0 type veth peer name guest0
ip -n nbA link set guest0 netns nbB
ip -n nbA addr add 10.79.0.1/24 dev vif9.0; ip -n nbA link set vif9.0 up
ip -n nbB addr add 10.79.0.2/24 dev guest0; ip -n nbB link set guest0 up
avg_rtt() {   # avg_rtt -> integer ms of 20 pings from "the guest"
    ip netns exec nbB busybox ping -c 20 -i 0.05 -W 2 10.79.0.1 > /tmp/ping.log 2>&1 || true
    tail -2 /tmp/ping.log >&2
    sed -n 's/.*min\/avg\/max = [0-9.]*\/\([0-9]*\)\..*/\1/p' /tmp/ping.log
}
ip netns exec nbA $R netbuf check --no-plug --hold 30 vif9.0 > /tmp/np.log 2>&1 &
NP=$!
sleep 2
base=$(avg_rtt)
kill -TERM $NP; wait $NP
echo "without plug: avg rtt ${base} ms"
ip netns exec nbA $R netbuf check --epochs 100 --interval 100 vif9.0 > /tmp/p.log 2>&1 &
P=$!
sleep 2
cat /tmp/p.log
ifb=$(ip -n nbA -o link show type ifb | awk -F': ' '{print $2}' | cut -d@ -f1)
ip netns exec nbA tc -s qdisc show dev "$ifb"
ip netns exec nbA tc qdisc show dev "$ifb" | grep -q "qdisc plug" || { echo "no plug qdisc on $ifb"; exit 1; }
held=$(avg_rtt)
kill -TERM $P; wait $P || true
cat /tmp/p.log
echo "with plug, 100 ms epochs: avg rtt ${held} ms"
[ "${base:-999}" -lt 5 ] || { echo "the redirect alone is slow: ${base} ms"; exit 1; }
[ "${held:-0}" -ge 20 ] || { echo "the plug did not hold the input back"; exit 1; }
if ip -n nbA -o link show type ifb | grep -q .; then echo "an IFB is left"; exit 1; fi
if ip netns exec nbA tc qdisc show dev vif9.0 | grep -q ingress; then echo "an ingress qdisc is left"; exit 1; fi
echo "netbuf: output held per epoch by sch_plug and released; nothing left"
# The plug step by step (tests/support/plug_steps.sh, what
# tests/integration/netbuf_plug.sh runs on a host kernel with sch_plug):
# held until an ended epoch is released, one epoch at a time, a discard
# drops what is held.
bash /payload/plug_steps.sh $R nbA nbB vif9.0 guest0 10.79.0.1 /tmp/plugsteps
if ip -n nbA -o link show type ifb | grep -q .; then echo "an IFB is left after the steps"; exit 1; fi
echo "netbuf: the plug holds, releases one epoch at a time, and discards"
