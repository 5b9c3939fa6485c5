#!/usr/bin/env bash
# Keyed by default (#16 item 5, #10's key):
#  1. no key anywhere: protect and receive refuse to run, naming keygen and
#     --insecure; --insecure with --key-file is a usage error;
#  2. --insecure: the pair runs, and both sides warn at start and at every
#     session;
#  3. a Failover frame injected into an unauthenticated control channel is
#     not honoured (before: the secondary took over, skipping its fence
#     command); the pair goes on;
#  4. a real, authenticated handover to a secondary with --fence-cmd goes
#     through the fence command: a failing one holds the takeover back;
#  5. a reprotection carries the key the VM's process ran with (no key in
#     the reprotect client's environment), to a keyed secondary;
#  6. a secondary that knows the VM (--config) refuses a primary whose VM
#     has another IP, and protects the one it knows;
#  7. the drill is keyed by default.
. "$ROOT/tests/lib/kvm.sh"
ns_setup tapp taps tapb
KEY=$REMUS_KEY_FILE
HB="--heartbeat 100 --heartbeat-timeout 3000"   # generous: loaded hosts, ASan
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=2000 dirty_wss=500" 1
# Commands, not functions: a background function would be a subshell, and
# $! its pid, not remus's.
IN_NS=(ip netns exec "$NS")
NOKEY=(env -u REMUS_KEY_FILE)                       # no $REMUS_KEY_FILE
NOKEY_NS=(env -u REMUS_KEY_FILE ip netns exec "$NS")

scenario "no key: refused"
if [ -e /etc/remus/remus.key ]; then
    echo "/etc/remus/remus.key exists on this machine: the default-key refusal cannot be tested here"; exit 1
fi
rc=0; "${NOKEY[@]}" "$REMUS" receive --listen 127.0.0.1:7950 > "$TMP/nk-r.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || { echo "receive without a key: exit $rc, not 1"; cat "$TMP/nk-r.log"; exit 1; }
grep -q "no pre-shared key" "$TMP/nk-r.log" || { echo "receive does not say there is no key"; cat "$TMP/nk-r.log"; exit 1; }
grep -q "remus keygen /etc/remus/remus.key" "$TMP/nk-r.log" || { echo "receive does not say how to make a key"; exit 1; }
grep -q -- "--insecure" "$TMP/nk-r.log" || { echo "receive does not name --insecure"; exit 1; }
rc=0; "${NOKEY_NS[@]}" "$REMUS" protect "$TMP/g.cfg" 127.0.0.1:7950 > "$TMP/nk-p.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || { echo "protect without a key: exit $rc, not 1"; cat "$TMP/nk-p.log"; exit 1; }
grep -q "no pre-shared key" "$TMP/nk-p.log" || { echo "protect does not say there is no key"; cat "$TMP/nk-p.log"; exit 1; }
if kv 1 1 "GET a" > /dev/null 2>&1; then echo "a VM runs although protect refused"; exit 1; fi
rc=0; "$REMUS" receive --insecure --key-file "$KEY" --listen 127.0.0.1:7950 2> "$TMP/nk-c.log" || rc=$?
[ "$rc" = 2 ] || { echo "--insecure with --key-file: exit $rc, not 2"; exit 1; }
grep -q "contradict" "$TMP/nk-c.log" || { echo "the contradiction is not named"; cat "$TMP/nk-c.log"; exit 1; }
echo "no key: $(grep -o 'no pre-shared key.*' "$TMP/nk-r.log" | cut -c1-100)..."

# A relay for the control connection (the primary's first connection) that
# can inject one frame between two of the primary's frames: a RemusMsg
# Failover{reason "x"} (field 6), 4-byte length + 5 bytes, unsealed.
cat > "$TMP/inject.py" <<'EOPY'
import os, socket, sys, threading
lport, tport, trigger = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
FRAME = (5).to_bytes(4, "big") + bytes([0x32, 0x03, 0x0a, 0x01, 0x78])
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", lport)); ls.listen(8)
def close(*socks):
    for s in socks:
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
def raw(a, b):
    while True:
        try: d = a.recv(65536)
        except OSError: d = b""
        if not d: return close(a, b)
        b.sendall(d)
def framed(a, b):   # primary -> secondary, frame by frame
    buf, injected = b"", False
    while True:
        try: d = a.recv(65536)
        except OSError: d = b""
        if not d: return close(a, b)
        buf += d
        while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
            n = 4 + int.from_bytes(buf[:4], "big")
            b.sendall(buf[:n]); buf = buf[n:]
            if not injected and os.path.exists(trigger):
                b.sendall(FRAME); injected = True
                print("relay: injected a Failover frame", flush=True)
n = 0
while True:
    c, _ = ls.accept()
    t = socket.create_connection(("127.0.0.1", tport))
    threading.Thread(target=framed if n == 0 else raw, args=(c, t), daemon=True).start()
    threading.Thread(target=raw, args=(t, c), daemon=True).start()
    n += 1
EOPY

scenario "--insecure: runs, warned at every session; an injected Failover is not honoured"
"${IN_NS[@]}" "$REMUS" receive --insecure --listen 127.0.0.1:7952 --tap taps $HB --name tguest \
    --fence-cmd "echo fenced >> $TMP/fence.out; exit 1" > "$TMP/sec.log" 2>&1 & SEC=$!; PIDS+=($SEC)
"${IN_NS[@]}" python3 "$TMP/inject.py" 7951 7952 "$TMP/inject-now" > "$TMP/relay.log" 2>&1 & PIDS+=($!)
sleep 0.3
"${IN_NS[@]}" "$REMUS" protect --insecure -i 20 $HB --progress 0 "$TMP/g.cfg" 127.0.0.1:7951 \
    > "$TMP/pri.log" 2>&1 & PRI=$!; PIDS+=($PRI)
wait_for "$TMP/sec.log" "replicating" 20
kv 2 1 "INCR a" "INCR a" | tail -1 | grep -q "^2 OK 2 " || { echo "no acknowledged writes"; exit 1; }
for f in "$TMP/sec.log" "$TMP/pri.log"; do
    [ "$(grep -c "INSECURE (--insecure)" "$f")" -ge 2 ] || { echo "$f does not warn at start and at the session"; cat "$f"; exit 1; }
done
grep -q "INSECURE (--insecure): this replication session with 127.0.0.1:" "$TMP/sec.log" || { echo "the secondary's session warning names no peer"; exit 1; }
touch "$TMP/inject-now"
wait_for "$TMP/relay.log" "injected a Failover frame" 10
wait_for "$TMP/sec.log" "a handover request on an unauthenticated channel (--insecure) is not honoured" 10
sleep 1
if grep -q "FAILOVER" "$TMP/sec.log"; then echo "the secondary took over on an injected frame"; cat "$TMP/sec.log"; exit 1; fi
if [ -e "$TMP/fence.out" ]; then echo "the fence command ran on an injected frame"; exit 1; fi
kv 2 3 "INCR a" | grep -q "^3 OK 3 " || { echo "protection did not go on after the injected frame"; exit 1; }
grep -q '"state": "protecting"' "$REMUS_RUN_DIR"/tguest.primary.status.json || { echo "the primary is no longer protecting"; exit 1; }
kill -INT $PRI; wait_for "$TMP/pri.log" "protection stopped after" 10
wait $SEC || { echo "the secondary did not exit 0 after a clean stop"; cat "$TMP/sec.log"; exit 1; }
kill -INT $PRI; wait $PRI || true
echo "insecure: warned on both sides; the injected Failover frame was logged and ignored"

scenario "a keyed handover goes through the fence command"
: > "$TMP/fence.out"
"${IN_NS[@]}" "$REMUS" receive --listen 127.0.0.1:7953 --tap taps $HB --name tguest \
    --fence-cmd "echo fenced \$REMUS_NAME >> $TMP/fence.out; exit 1" > "$TMP/sec2.log" 2>&1 & SEC=$!; PIDS+=($SEC)
"${IN_NS[@]}" "$REMUS" protect -i 20 $HB --progress 0 "$TMP/g.cfg" 127.0.0.1:7953 > "$TMP/pri2.log" 2>&1 & PRI=$!; PIDS+=($PRI)
wait_for "$TMP/sec2.log" "authenticated and encrypted" 20
kv 3 1 "INCR b" | grep -q "^1 OK 1 " || { echo "no acknowledged write"; exit 1; }
wait_until 10 "the primary's status 'protecting'" in_file "$REMUS_RUN_DIR"/tguest.primary.status.json '"state": "protecting"'
"$REMUS" handover tguest > "$TMP/h.out" 2> "$TMP/h.err" || { cat "$TMP/h.err"; exit 1; }
rc=0; wait $SEC || rc=$?
[ "$rc" = 4 ] || { echo "a handover with a failing fence command: receive exit $rc, not 4"; cat "$TMP/sec2.log"; exit 1; }
grep -q "fenced tguest" "$TMP/fence.out" || { echo "the fence command did not run for the handover"; exit 1; }
grep -q "NOT TAKING OVER.*the primary handed the VM over" "$TMP/sec2.log" || { echo "the secondary does not say why it stands down"; cat "$TMP/sec2.log"; exit 1; }
wait $PRI || true
echo "handover with fencing: $(grep -o 'NOT TAKING OVER.*' "$TMP/sec2.log" | cut -c1-120)"

scenario "a reprotection carries the VM's key"
K2="$TMP/k2"; "$REMUS" keygen "$K2" > /dev/null
"${NOKEY_NS[@]}" "$REMUS" receive --key-file "$K2" --listen 127.0.0.1:7954 --tap taps $HB > "$TMP/sa.log" 2>&1 & SA=$!; PIDS+=($SA)
"${NOKEY_NS[@]}" "$REMUS" protect --key-file "$K2" -i 20 $HB --progress 0 "$TMP/g.cfg" 127.0.0.1:7954 > "$TMP/pri3.log" 2>&1 & PRI=$!; PIDS+=($PRI)
wait_for "$TMP/sa.log" "authenticated and encrypted" 20
kv 4 1 "INCR c" "INCR c" | tail -1 | grep -q "^2 OK 2 " || { echo "no acknowledged writes"; exit 1; }
kill -9 $PRI; wait $PRI 2>/dev/null || true
wait_for "$TMP/sa.log" "FAILOVER" 15
"${NOKEY_NS[@]}" "$REMUS" receive --key-file "$K2" --listen 127.0.0.1:7955 --tap tapb $HB > "$TMP/sb.log" 2>&1 & SB=$!; PIDS+=($SB)
sleep 0.3
"${NOKEY_NS[@]}" "$REMUS" reprotect -i 20 $HB tguest 127.0.0.1:7955 > "$TMP/rp.out" 2> "$TMP/rp.err" || { echo "reprotect failed"; cat "$TMP/rp.err" "$TMP/sb.log"; exit 1; }
grep -q "authenticated and encrypted" "$TMP/sb.log" || { echo "the reprotection is not authenticated"; cat "$TMP/sb.log"; exit 1; }
kv 4 3 "INCR c" | grep -q "^3 OK 3 " || { echo "no acknowledged write after the reprotection"; exit 1; }
"${IN_NS[@]}" "$REMUS" reprotect --stop tguest > /dev/null 2>&1 || true
kill -9 $SA $SB 2>/dev/null || true; wait $SA $SB 2>/dev/null || true   # frees taps, tapb
echo "reprotect: keyed with the key the VM's process ran with"

scenario "a secondary that knows the VM refuses another one"
sed 's/^ip = .*/ip = 10.77.0.9/' "$TMP/g.cfg" > "$TMP/other.cfg"
"${IN_NS[@]}" "$REMUS" receive --config "$TMP/other.cfg" --listen 127.0.0.1:7956 --tap taps $HB > "$TMP/sk.log" 2>&1 & SK=$!; PIDS+=($SK)
"${IN_NS[@]}" "$REMUS" protect -i 20 $HB --progress 0 "$TMP/g.cfg" 127.0.0.1:7956 > "$TMP/pk.log" 2>&1 & PRI=$!; PIDS+=($PRI)
wait_until 30 "the secondary to refuse" in_file "$TMP/sk.log" "the primary's VM has IP 10.77.0.2"
grep -q "this secondary's configuration 10.77.0.9" "$TMP/sk.log" || { echo "the refusal does not name both IPs"; cat "$TMP/sk.log"; exit 1; }
if grep -q "FAILOVER" "$TMP/sk.log"; then echo "a secondary ran a VM it does not know"; exit 1; fi
kill -9 $PRI 2>/dev/null || true; kill $SK 2>/dev/null || true; wait $PRI $SK 2>/dev/null || true
"${IN_NS[@]}" "$REMUS" receive --config "$TMP/g.cfg" --listen 127.0.0.1:7957 --tap taps $HB > "$TMP/sk2.log" 2>&1 & SK=$!; PIDS+=($SK)
"${IN_NS[@]}" "$REMUS" protect -i 20 $HB --progress 0 "$TMP/g.cfg" 127.0.0.1:7957 > "$TMP/pk2.log" 2>&1 & PRI=$!; PIDS+=($PRI)
wait_for "$TMP/sk2.log" "replicating 'tguest'" 20
kv 5 1 "INCR d" | grep -q "^1 OK 1 " || { echo "the VM the secondary knows is not protected"; cat "$TMP/sk2.log"; exit 1; }
kill -INT $PRI; wait_for "$TMP/pk2.log" "protection stopped after" 10; kill -INT $PRI; wait $PRI $SK 2>/dev/null || true
echo "known VM: $(grep -o "the primary's VM has IP.*" "$TMP/sk.log" | head -1)"

scenario "the drill is keyed by default"
"$REMUS" drill --quiet --kill-after 1 --after 1 --clients 2 --keep-logs "$TMP/drill" > "$TMP/drill.out" 2>&1 || { cat "$TMP/drill.out"; exit 1; }
grep -q "authenticated and encrypted" "$TMP/drill/primary.log" || { echo "the drill ran without a key"; exit 1; }
echo "drill: keyed by default"
