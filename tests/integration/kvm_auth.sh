#!/usr/bin/env bash
# Authenticated protection (--key-file) on KVM:
#  - keygen: mode 0600, never overwrites;
#  - protect + receive with the same key: the replica converges, the
#    control channel and the stream are sealed (no plaintext on the
#    wire), and after the primary is killed the replica takes over with
#    every acknowledged operation;
#  - a wrong key: the secondary refuses it (peer address + reason) and
#    keeps waiting, protect exits non-zero while its VM keeps running
#    (until stopped); the right key is then accepted by the same secondary;
#  - an unkeyed primary to a keyed secondary and a keyed primary to an
#    unkeyed secondary are refused with the reason on both sides (the
#    secondary goes on waiting);
#  - a stranger on the stream port with the session token (seen in clear)
#    but no key is refused and cannot take the stream's place;
#  - one byte flipped in the authenticated stream (tests/support/tcpmangle):
#    the secondary logs the authentication failure at its byte, discards
#    the open checkpoint and, the primary being alive, does not take over
#    (it tells the primary, which runs on with every acknowledged op).
. "$ROOT/tests/lib/kvm.sh"
ns_setup tapp taps
K1="$TMP/k1" K2="$TMP/k2"
# A TCP relay on 127.0.0.1 (tests only): relay.py LISTEN TARGET MODE [CAP]
#   record  relay every connection; client->server bytes of the N-th
#           connection go to CAP.c2s.N
#   steal   relay; take the session token from the secondary's hello reply
#           (in clear, at its end) and, when the secondary's key proof
#           passes (its handshake is done: it awaits the stream), first
#           open a stream connection ourselves presenting that token and a
#           forged sealed chunk, then let the proof on to the primary
cat > "$TMP/relay.py" <<'EOPY'
import os, socket, sys, threading, time
lport, tport, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
cap = sys.argv[4] if len(sys.argv) > 4 else None
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", lport)); ls.listen(8)
keep = []
def pump(a, b, out, hook):
    buf = b""
    frames = []
    hooked = hook is None
    while True:
        try:
            d = a.recv(65536)
        except OSError:
            d = b""
        if not d:
            for s in (a, b):
                try: s.shutdown(socket.SHUT_RDWR)
                except OSError: pass
            return
        if out: out.write(d); out.flush()
        if not hooked:
            buf += d
            while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
                n = int.from_bytes(buf[:4], "big")
                frames.append(buf[4:4 + n]); buf = buf[4 + n:]
            if len(frames) >= 2:     # the hello reply, then the key proof
                hook(frames[0])
                hooked = True
        b.sendall(d)
def fields(msg):   # (number, value) of a protobuf message's fields
    i = 0
    def varint():
        nonlocal i
        v = shift = 0
        while True:
            b = msg[i]; i += 1; v |= (b & 0x7f) << shift; shift += 7
            if b < 0x80: return v
    while i < len(msg):
        key = varint(); num, wt = key >> 3, key & 7
        if wt == 0: yield num, varint()
        elif wt == 2:
            n = varint(); yield num, msg[i:i + n]; i += n
        else: raise ValueError("wire type %d" % wt)
def steal(reply):
    # RemusMsg.hello_reply (2) -> HelloReply.hello (3) -> Hello.session (13)
    hr = dict(fields(reply))[2]
    token = dict(fields(dict(fields(hr))[3]))[13]
    assert len(token) == 16, "no session token in the reply"
    s = socket.create_connection(("127.0.0.1", tport)); keep.append(s)
    s.sendall(token + (100).to_bytes(4, "big") + os.urandom(100))
    print("relay: stole the session token, stream connection opened first", flush=True)
    time.sleep(0.3)
n = 0
while True:
    c, _ = ls.accept()
    t = socket.create_connection(("127.0.0.1", tport))
    out = open("%s.c2s.%d" % (cap, n), "wb") if cap else None
    hook = steal if (mode == "steal" and n == 0) else None
    threading.Thread(target=pump, args=(c, t, out, None), daemon=True).start()
    threading.Thread(target=pump, args=(t, c, None, hook), daemon=True).start()
    n += 1
EOPY

# -- keygen --------------------------------------------------------------------
scenario "keygen"
"$REMUS" keygen "$K1"
"$REMUS" keygen "$K2"
[ "$(stat -c %a "$K1")" = 600 ] || { echo "key file mode is not 600"; exit 1; }
cp "$K1" "$TMP/k1.orig"
if "$REMUS" keygen "$K1" 2> "$TMP/kg.err"; then echo "keygen overwrote a key"; exit 1; fi
grep -q "not overwriting" "$TMP/kg.err"
cmp -s "$K1" "$TMP/k1.orig"
if cmp -s "$K1" "$K2"; then echo "two generated keys are equal"; exit 1; fi
cp "$K1" "$TMP/kpub"; chmod 644 "$TMP/kpub"
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=3000 dirty_wss=500" 1
if timeout 20 "$REMUS" protect --key-file "$TMP/kpub" "$TMP/g.cfg" 127.0.0.1:7795 2> "$TMP/kp.err"; then
    echo "a world-readable key was accepted"; exit 1
fi
grep -q "readable by others" "$TMP/kp.err"

# -- same key: protected, sealed, failover ---------------------------------------
scenario "same key"
# The primary talks to the secondary through a relay that records what
# the primary sends on both connections.
start_sec 7791 "$TMP/sec.log" --key-file "$K1" --digest-every 5 \
    --digest-file "$TMP/sec.digests"
ip netns exec "$NS" python3 "$TMP/relay.py" 7790 7791 record "$TMP/wire" \
    > "$TMP/relay.log" 2>&1 & PIDS+=($!)
sleep 0.2
start_pri "" 7790 --key-file "$K1" --digest-every 5 \
    --digest-file "$TMP/pri.digests"
wait_for "$TMP/sec.log" "authenticated and encrypted" 15
acked=0
for i in $(seq 1 20); do
    if kv 30 $i "INCR a" | grep -q "^$i OK $i "; then acked=$i; fi
done
[ "$acked" = 20 ] || { echo "only $acked increments acknowledged"; exit 1; }
sleep 1
grep -q "authenticated and encrypted" "$TMP/pri.log"
kill -9 $PRI; wait $PRI 2>/dev/null || true
wait_for "$TMP/sec.log" "FAILOVER" 15
out=$(kv 30 100 "GET a")
echo "keyed failover: replica says '$out' after $acked acknowledged increments"
[ "$(echo "$out" | awk '{print $3}')" -ge "$acked" ]
kv 30 101 "INCR a" | grep -q "^101 OK "          # the guest goes on
check_convergence "$TMP/pri.digests" "$TMP/sec.digests" 3 "keyed convergence"
convergence_controls "$TMP/pri.digests" "$TMP/sec.digests" 3
# The hello is in clear (the VM name "tguest" is in it: the capture
# works), the stream is not: without a key it starts with the image
# header "XENF" and its records; with one, no XENF anywhere.
grep -qa "tguest" "$TMP/wire.c2s.0" || { echo "control capture is empty"; exit 1; }
[ "$(stat -c %s "$TMP/wire.c2s.1")" -gt 100000 ] || { echo "no stream bytes captured"; exit 1; }
if grep -qa "XENF" "$TMP/wire.c2s.1"; then echo "stream header in clear"; exit 1; fi
kill -TERM $SEC; rc=0; wait_exit $SEC 10 || rc=$?
[ "$rc" = 3 ] || { echo "receive should exit 3 after a failover"; exit 1; }
unset rc

# -- wrong key; then the right one reaches the same secondary --------------------
scenario "wrong key; then the right one reaches the same secondary"
start_sec 7792 "$TMP/sec2.log" --key-file "$K1"
sleep 0.2
start_pri 2 7792 --key-file "$K2"
wait_for "$TMP/pri2.log" "UNPROTECTED" 15
grep -q "refused our key proof: authentication failed" "$TMP/pri2.log"
kv 30 1 "INCR w" | grep -q "^1 OK 1 "            # the VM runs on the primary
stop_pri $PRI
rc=0; wait_exit $PRI 10 || rc=$?
[ "$rc" -ne 0 ] || { echo "protect exited 0 after a refused handshake"; exit 1; }
grep -Eq "refused the connection from 127\.0\.0\.1:[0-9]+: authentication failed: the primary's key proof does not match" "$TMP/sec2.log"
kill -0 $SEC || { echo "a wrong key ended the keyed secondary"; exit 1; }
# An unkeyed primary to the keyed secondary.
start_pri 3 7792 --insecure
wait_for "$TMP/pri3.log" "UNPROTECTED" 15
grep -q "unauthenticated peer" "$TMP/pri3.log"
stop_pri $PRI; wait_exit $PRI 10 || true
grep -Eq "refused the connection from 127\.0\.0\.1:[0-9]+: unauthenticated peer" "$TMP/sec2.log"
kill -0 $SEC || { echo "an unkeyed primary ended the keyed secondary"; exit 1; }
# The right key: protected by the same secondary.
start_pri 4 7792 --key-file "$K1"
wait_for "$TMP/sec2.log" "replicating" 15
kv 30 1 "INCR r" | grep -q "^1 OK 1 "
kill -INT $PRI
wait_for "$TMP/pri4.log" "protection stopped after" 10
wait_exit $SEC 10 || { echo "keyed secondary did not exit 0 after a clean stop"; cat "$TMP/sec2.log"; exit 1; }
kill -INT $PRI; wait_exit $PRI 10 || true
echo "refusals logged by the secondary:"; grep "refused" "$TMP/sec2.log"

# -- a keyed primary to an unkeyed secondary ------------------------------------
scenario "a keyed primary to an unkeyed secondary"
start_sec 7793 "$TMP/sec5.log" --insecure
sleep 0.2
start_pri 5 7793 --key-file "$K1"
wait_for "$TMP/pri5.log" "UNPROTECTED" 15
grep -q "this secondary has none" "$TMP/pri5.log"
stop_pri $PRI; wait_exit $PRI 10 || true
wait_for "$TMP/sec5.log" "refused the connection" 10
grep -Eq "refused the connection from 127\.0\.0\.1:[0-9]+: the primary authenticates with a key and this secondary has none" "$TMP/sec5.log"
# Keyed or not, a refused peer does not end the secondary.
kill -0 $SEC || { echo "a keyed primary ended the unkeyed secondary"; exit 1; }
kill -TERM $SEC 2>/dev/null || true; wait_exit $SEC 10 || true

# -- a stranger on the stream port with the token in clear -----------------------
scenario "a stranger on the stream port with the token in clear"
# The relay reads the session token from the secondary's hello reply and,
# once the secondary has finished its handshake, opens a stream connection
# itself, first, presenting the token and a forged chunk.
start_sec 7796 "$TMP/sec6.log" --key-file "$K1"
ip netns exec "$NS" python3 "$TMP/relay.py" 7797 7796 steal \
    > "$TMP/relay6.log" 2>&1 & PIDS+=($!)
sleep 0.2
start_pri 6 7797 --key-file "$K1"
wait_for "$TMP/sec6.log" "replicating" 15
grep -q "stole the session token" "$TMP/relay6.log"
grep -Eq "refused a stream connection from 127\.0\.0\.1:[0-9]+: authentication failed on the checkpoint stream at byte 0" "$TMP/sec6.log"
kv 30 1 "INCR s" | grep -q "^1 OK 1 "
kill -INT $PRI
wait_for "$TMP/pri6.log" "protection stopped after" 10
wait_exit $SEC 10 || { echo "secondary did not exit 0 after the stranger"; cat "$TMP/sec6.log"; exit 1; }
kill -INT $PRI; wait_exit $PRI 10 || true

# -- one byte flipped in the authenticated stream --------------------------------
scenario "one byte flipped in the authenticated stream"
start_sec 7799 "$TMP/sec7.log" --key-file "$K1"
ip netns exec "$NS" "$BUILD/tests/tcpmangle" 7798 7799 corrupt 6000 \
    > "$TMP/mangle7.log" 2>&1 & PIDS+=($!)
sleep 0.2
start_pri 7 7798 --key-file "$K1"
# Increments acknowledged while protected, before the flip (6 s after the
# stream opened); after it the primary loses its secondary and runs on
# unprotected, so later acknowledgements are not the replica's business.
acked=0
for i in $(seq 1 30); do
    if kv 50 $i "INCR c" | grep -q "^$i OK $i "; then acked=$i; fi
done
if grep -q "corrupted" "$TMP/mangle7.log"; then
    echo "the byte was flipped before the increments were done (a slow machine?)"; exit 1
fi
[ "$acked" = 30 ] || { echo "only $acked of 30 increments acknowledged"; exit 1; }
# The primary is alive: the secondary discards the open checkpoint and
# does NOT take over; it tells the primary, which runs on unprotected.
rc=0; wait_exit $SEC 20 || rc=$?
[ "$rc" = 1 ] || { cat "$TMP/sec7.log"; echo "flipped byte: the secondary exited $rc (want 1)"; exit 1; }
grep -q "corrupted one byte" "$TMP/mangle7.log"
wait_for "$TMP/pri7.log" "UNPROTECTED" 10    # told by its secondary
grep -q "the secondary stopped the protection" "$TMP/pri7.log"
if grep -q "FAILOVER\|resumed from checkpoint" "$TMP/sec7.log"; then
    cat "$TMP/sec7.log"; echo "flipped byte: the secondary took over from a live primary"; exit 1
fi
grep -Eq "authentication failed on the checkpoint stream at byte [0-9]+: chunk [0-9]+ .* was tampered with" "$TMP/sec7.log"
grep -Eq "stream connection from 127\.0\.0\.1:[0-9]+" "$TMP/sec7.log"
reason=$(grep -o "the checkpoint stream failed.*NOT taking over.*" "$TMP/sec7.log")
echo "flipped byte: $reason"
grep -q "authentication failed on the checkpoint stream at byte" <<< "$reason"
committed=$(echo "$reason" | grep -o "the replica of checkpoint [0-9]*" | awk '{print $5}')
grep -q "the replica stays at checkpoint $committed, discarding" "$TMP/sec7.log"
out=$(kv 50 100 "GET c")
echo "flipped byte: the primary (the replica of checkpoint $committed discarded) says '$out' after $acked acknowledged increments"
[ "$(echo "$out" | awk '{print $3}')" -ge "$acked" ] || { echo "acknowledged increments were lost"; exit 1; }
kill -INT $PRI; sleep 0.3; kill -INT $PRI 2>/dev/null || true; wait $PRI 2>/dev/null || true
kill -TERM $SEC 2>/dev/null || true; wait_exit $SEC 10 || true

# -- the drill with a key of its own (--auth) and with --key-file ----------------
scenario "the drill with a key of its own (--auth) and with --key-file"
"$REMUS" drill --auth --quiet --kill-after 2 --after 1 --clients 2 \
    --keep-logs "$TMP/drill" --json "$TMP/drill.json" > "$TMP/drill.out" 2>&1 || {
    cat "$TMP/drill.out"; echo "drill --auth failed"; exit 1; }
grep -q '"lost_ops": 0,' "$TMP/drill.json"
grep -q "authenticated and encrypted" "$TMP/drill/primary.log"
grep -q "authenticated and encrypted" "$TMP/drill/secondary.log"
[ "$(stat -c %a "$TMP/drill/drill.key")" = 600 ]
if timeout 30 "$REMUS" drill --key-file "$TMP/kpub" --quiet --kill-after 1 \
    > "$TMP/drill2.out" 2>&1; then
    echo "the drill ran with a world-readable key"; exit 1
fi
grep -q "readable by others" "$TMP/drill2.out"
echo "drill --auth: $(grep -E 'failover time|acknowledged ops lost' "$TMP/drill.out" | tr -s ' ' | tr '\n' ';')"
