#!/usr/bin/env bash
# plug_steps.sh REMUS VIF_NS GUEST_NS VIF GUEST_IF HOST_IP DIR (tests only)
# The plug qdisc itself, on a kernel that has sch_plug, driven by `remus
# netbuf check --steps` on VIF (in network namespace VIF_NS, address
# HOST_IP) while "the guest" (GUEST_IF in GUEST_NS) sends tagged UDP
# datagrams into it: what the VIF receives is held, an ended epoch is let
# out by a release and only then, one epoch at a time, and a discard drops
# what is held.  Self-contained: the Xen lab's dom0 runs it too
# (lab/xen/scenarios/netbuf.sh).  Exit 0 or 1 with the reason.
set -euo pipefail
[ $# = 7 ] || { echo "usage: $0 REMUS VIF_NS GUEST_NS VIF GUEST_IF HOST_IP DIR" >&2; exit 2; }
REMUS=$1 A=$2 B=$3 VIF=$4 GIF=$5 IP=$6 DIR=$7
mkdir -p "$DIR"
pids=()
trap 'for p in "${pids[@]:-}"; do [ -z "$p" ] || kill -9 "$p" 2>/dev/null || true; done' EXIT
NA() { ip netns exec "$A" "$@"; }
NB() { ip netns exec "$B" "$@"; }
cat > "$DIR/udp.py" <<'EOP'
import socket, sys
ip, port = sys.argv[2], 9999
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if sys.argv[1] == "recv":
    s.bind((ip, port))
    with open(sys.argv[3], "a") as f:
        while True:
            d, _ = s.recvfrom(100)
            f.write(d.decode() + "\n"); f.flush()
else:
    for i in range(int(sys.argv[4])):
        s.sendto(("%s-%d" % (sys.argv[3], i)).encode(), (ip, port))
EOP
got() { grep -c "^$1-" "$DIR/udp.got" || true; }   # datagrams of tag $1 received
send() { NB python3 "$DIR/udp.py" send "$IP" "$1" 5; sleep 0.5; }
expect() {     # expect TAG N WHAT
    local n; n=$(got "$1")
    [ "$n" = "$2" ] || { echo "plug: $3: $n of 5 '$1' datagrams arrived (want $2)"; cat "$DIR/steps.log"; exit 1; }
}
wait_line() {   # wait_line TEXT COUNT: the COUNTth answer TEXT within 5 s
    local i
    for i in $(seq 1 50); do
        if [ "$(grep -c "^$1$" "$DIR/steps.log" || true)" -ge "$2" ]; then return 0; fi
        sleep 0.1
    done
    echo "no answer '$1' from netbuf check --steps"; cat "$DIR/steps.log"; exit 1
}
step() { echo "$1" >&7; wait_line "netbuf: $1 done" "$2"; }

: > "$DIR/udp.got"
ip netns exec "$A" python3 "$DIR/udp.py" recv "$IP" "$DIR/udp.got" & pids+=($!)   # not NA: $! must be python's pid
mac=$(NA cat "/sys/class/net/$VIF/address")
NB ip neigh replace "$IP" lladdr "$mac" dev "$GIF" nud permanent
rm -f "$DIR/steps"; mkfifo "$DIR/steps"
ip netns exec "$A" "$REMUS" netbuf check --steps "$VIF" < "$DIR/steps" > "$DIR/steps.log" 2>&1 & STEPS=$!; pids+=($STEPS)
exec 7> "$DIR/steps"
wait_line "netbuf: an epoch was buffered and released" 1
send a;  expect a 0 "the plug let an epoch out before it ended"
step buffer 1
send b;  expect a 0 "the plug let an ended epoch out before its release"
step release 1
sleep 0.3
expect a 5 "a released epoch"
expect b 0 "the plug let out the epoch after the released one"
step buffer 2; step release 2; sleep 0.3
expect b 5 "the next released epoch"
send c;  step discard 1
step buffer 3; step release 3; sleep 0.3
expect c 0 "the plug let out what was discarded"
exec 7>&-
wait $STEPS || { echo "netbuf check --steps failed"; cat "$DIR/steps.log"; exit 1; }
grep -q "torn down" "$DIR/steps.log" || { echo "no teardown"; exit 1; }
echo "sch_plug: held until released, one epoch at a time; a discard drops"
