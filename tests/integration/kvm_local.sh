#!/usr/bin/env bash
# Local hardening on one host (issue #16, items 11-14), with a tiny hostile
# guest (tests/support/tiny_guest.py: console escape sequences, a console
# flood, a chosen halt code):
#  1. the VM's control socket: 0600 in a 0700 run directory even under
#     umask 000; a client of another uid is refused (peer credentials); a
#     silent client does not block `remus save`;
#  2. save files: mode 0600; a save that fails (a full tmpfs) leaves the
#     previous save as it was and no temporary file;
#  3. the fence command gets REMUS_NAME from --name, never from the peer,
#     and --fence-cmd needs --name; a peer's name is escaped in our logs;
#  4. a second primary is told why it cannot connect (the paired secondary
#     listens no more);
#  5. `remus protect`'s exit status never carries the guest's halt code;
#  6. `remus handover` does not signal a process a stale status file names;
#  7. the guest console: escape sequences escaped, a flood bounded;
#  8. a key file with group access or of the wrong format is refused.
. "$ROOT/tests/lib/kvm.sh"
ns_setup
PY=/usr/bin/python3
NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
fail() { echo "FAIL: $*"; for f in "$TMP"/*.log; do echo "--- $f"; tail -n 15 "$f"; done; exit 1; }
tiny() { "$PY" "$ROOT/tests/support/tiny_guest.py" "$@"; }   # OUT CODE WAIT_MS FLOOD
# The run directory must be reachable by nobody for the refusals to be ours.
chmod 711 "$TMP"; mkdir -m 755 "$TMP/pub"
export REMUS_RUN_DIR="$TMP/pub/run"
tiny "$TMP/idle.elf" 0 600000 0          # writes a line, then sleeps 10 min
echo "memory = 16" > "$TMP/t.cfg"        # for protect (--image, --name given)

# -- 1. control socket ----------------------------------------------------------
scenario "1. control socket"
(umask 000; exec "$REMUS" run --name ctl1 --image "$TMP/idle.elf" --memory 16 \
    --console "$TMP/ctl1.console" > "$TMP/ctl1.log" 2>&1) & VM=$!; PIDS+=($VM)
sock_there() { [ -S "$REMUS_RUN_DIR/ctl1.sock" ]; }
wait_until 10 "the control socket" sock_there || fail "no control socket"
[ "$(stat -c %a "$REMUS_RUN_DIR")" = 700 ] || fail "run directory is $(stat -c %a "$REMUS_RUN_DIR") under umask 000, not 700"
[ "$(stat -c %a "$REMUS_RUN_DIR/ctl1.sock")" = 600 ] || fail "control socket is $(stat -c %a "$REMUS_RUN_DIR/ctl1.sock") under umask 000, not 600"
connect_as_nobody() {  # connect_as_nobody PATH: prints the reply or the error
    $NOBODY "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect failed:", e.strerror); sys.exit(0)
s.settimeout(10)
try:
    s.sendall(b"frame gfn 0\0")
except OSError:
    pass   # a refusing server may have closed already; its answer is queued
print("reply:", s.recv(600).decode(errors="replace").strip())' "$1"
}
out=$(connect_as_nobody "$REMUS_RUN_DIR/ctl1.sock")
case "$out" in "connect failed:"*) ;; *) fail "nobody reached the control socket: $out" ;; esac
# Even if the socket's mode were loosened, another uid is refused (SO_PEERCRED).
ln "$REMUS_RUN_DIR/ctl1.sock" "$TMP/pub/ctl1.link"
chmod 666 "$TMP/pub/ctl1.link"
out=$(connect_as_nobody "$TMP/pub/ctl1.link")
chmod 600 "$TMP/pub/ctl1.link"; rm -f "$TMP/pub/ctl1.link"
case "$out" in "reply: error permission denied"*) ;; *) fail "a client of uid 65534 was not refused: $out" ;; esac
grep -q "refused a client of uid 65534" "$TMP/ctl1.log" || fail "the refusal is not logged"
# A silent client (connects, sends nothing) does not hold the control thread.
"$PY" -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(60)' \
    "$REMUS_RUN_DIR/ctl1.sock" & SILENT=$!; PIDS+=($SILENT)
sleep 0.5
# -- 2. save files ----------------------------------------------------------------
scenario "2. save files"
umask 022
timeout 30 "$REMUS" save -c ctl1 "$TMP/s1.save" 2> "$TMP/save1.err" || fail "save with a silent client connected: $(cat "$TMP/save1.err")"
kill "$SILENT" 2>/dev/null || true
[ "$(stat -c %a "$TMP/s1.save")" = 600 ] || fail "save file mode $(stat -c %a "$TMP/s1.save"), not 600"
"$REMUS" stream-info --quiet "$TMP/s1.save" || fail "the save is not a valid stream"
size=$(stat -c %s "$TMP/s1.save")
[ "$size" -gt 1048576 ] || fail "the save ($size bytes) would fit the 1 MiB tmpfs: no disk-full case"
mkdir "$TMP/full"; mount -t tmpfs -o size=1m tmpfs "$TMP/full"
umount_full() { umount "$TMP/full" 2>/dev/null || true; cleanup; }
trap umount_full EXIT
echo "the previous good save" > "$TMP/full/vm.save"
rc=0; "$REMUS" save -c ctl1 "$TMP/full/vm.save" 2> "$TMP/save2.err" || rc=$?
[ $rc = 1 ] || fail "a save onto a full disk exited $rc, not 1"
[ "$(cat "$TMP/full/vm.save")" = "the previous good save" ] || fail "a failed save destroyed the previous save"
[ "$(ls "$TMP/full")" = vm.save ] || fail "a failed save left files behind: $(ls "$TMP/full")"
grep -q "previous save file, if any, is unchanged" "$TMP/save2.err" || fail "no reason: $(cat "$TMP/save2.err")"
alive $VM || fail "the VM stopped after a failed save"
echo "save: mode 600; on a full disk: $(tail -1 "$TMP/save2.err" | cut -c1-150)"
umount "$TMP/full"
# -- 6. handover and a stale status file (never signalled) ---------------------------------------------
scenario "6. handover and a stale status file"
sleep 600 & SLP=$!; PIDS+=($SLP)
cat > "$REMUS_RUN_DIR/stale.primary.status.json" <<EOF
{
  "name": "stale", "role": "primary", "state": "protecting", "backend": "kvm",
  "peer": "127.0.0.1:1", "detail": "", "pid": $SLP, "pid_start": 1,
  "epoch": 1, "acked_epoch": 1, "last_pause_us": 0, "last_dirty_pages": 0,
  "last_bytes": 0, "total_bytes": 0, "interval_ms": 20,
  "failover_unix_ms": 0, "updated_unix_ms": 0
}
EOF
rc=0; "$REMUS" handover --timeout 2000 stale 2> "$TMP/h.err" || rc=$?
sleep 0.3
alive $SLP || fail "remus handover signalled the process a stale status file names"
[ $rc = 1 ] || fail "handover with a stale status file exited $rc"
# Handover goes through the VM's control socket only: nothing serves
# 'stale', whatever its status file says.
grep -q "no VM named 'stale' is held by a remus process here" "$TMP/h.err" || fail "no reason: $(cat "$TMP/h.err")"
sed -i "s/\"pid\": $SLP/\"pid\": $VM/" "$REMUS_RUN_DIR/stale.primary.status.json"
rc=0; "$REMUS" handover --timeout 2000 stale 2> "$TMP/h2.err" || rc=$?
[ $rc = 1 ] || fail "handover naming another remus process exited $rc"
alive $VM || fail "remus handover signalled a remus process of another VM"
echo "handover: $(tail -1 "$TMP/h.err" | cut -c1-160)"
kill -TERM $VM; wait $VM || true
# -- 7. guest console ------------------------------------------------------------------
scenario "7. guest console"
tiny "$TMP/flood.elf" 0 0 2000           # 2000 x 4 KiB of console at once
rc=0; timeout 60 "$REMUS" run --name flood --image "$TMP/flood.elf" --memory 16 \
    --console "$TMP/flood.console" > "$TMP/flood.log" 2>&1 || rc=$?
[ $rc = 0 ] || fail "the flooding guest's run exited $rc"
csize=$(stat -c %s "$TMP/flood.console")
[ "$csize" -lt $((2 * 262144)) ] || fail "the console log took $csize bytes of an 8 MB flood"
grep -q "bytes of guest output dropped" "$TMP/flood.console" || fail "no note of the dropped console output"
grep -qF 'tiny-guest: \x1b[2J\x1b]0;owned\x07 bell\x07 nul\x00 cr\x0d end' "$TMP/flood.console" || fail "console line not escaped: $(head -c 120 "$TMP/flood.console" | od -c | head -3)"
if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$TMP/flood.console"; then fail "a control character reached the console log"; fi
# to stderr (no --console): escaped too
rc=0; timeout 60 "$REMUS" run --name cons --image "$TMP/idle.elf" --memory 16 --timeout 1 > "$TMP/cons.log" 2>&1 || rc=$?
grep -qF '[cons] tiny-guest: \x1b[2J' "$TMP/cons.log" || fail "console on stderr not escaped"
if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$TMP/cons.log"; then fail "a control character reached stderr"; fi
echo "console: $csize bytes kept of the flood; $(grep -o 'console: [0-9]* bytes[^]]*' "$TMP/flood.console")"

# -- 3. fence command and a hostile peer name; 4. busy; 5. exit status ---------------------
scenario "3. fence command and a hostile peer name; 4. busy; 5. exit status"
HB="--heartbeat 100 --heartbeat-timeout 2000"
rc=0; out=$(timeout 10 "$REMUS" receive --listen 127.0.0.1:7861 --fence-cmd true 2>&1) || rc=$?
[ $rc = 2 ] || fail "--fence-cmd without --name: exit $rc, not 2 (usage)"
grep -q "needs --name" <<< "$out" || fail "no reason for --fence-cmd without --name: $out"
tiny "$TMP/halt3.elf" 3 15000 0          # halts with code 3 after 15 s
EVIL=$'evil\e[31m;$(touch '"$TMP"$'/pwned)\nforged'
ip netns exec "$NS" "$REMUS" receive --listen 127.0.0.1:7861 $HB > "$TMP/sec.log" 2>&1 & SEC=$!; PIDS+=($SEC)
sleep 0.3
ip netns exec "$NS" "$REMUS" protect -i 20 $HB --progress 0 --name "$EVIL" --image "$TMP/halt3.elf" \
    --memory 16 --console "$TMP/p1.console" "$TMP/t.cfg" 127.0.0.1:7861 > "$TMP/pri.log" 2>&1 & PRI=$!; PIDS+=($PRI)
wait_for "$TMP/sec.log" "replicating" 20
# 4. a second primary while the first is protected: told why, at once
ip netns exec "$NS" "$REMUS" protect -i 20 $HB --progress 0 --name second --image "$TMP/idle.elf" \
    --memory 16 --console "$TMP/p2.console" "$TMP/t.cfg" 127.0.0.1:7861 \
    > "$TMP/pri2.log" 2>&1 & PRI2=$!; PIDS+=($PRI2)
wait_for "$TMP/pri2.log" "already paired with a primary and listens no more" 20 || fail "the second primary was not told why it cannot connect"
kill -9 $PRI2; wait $PRI2 2>/dev/null || true
alive $SEC || fail "the paired secondary ended"
# 3. the peer's name reached the log escaped
grep -qF "replicating 'evil\x1b[31m;\$(touch" "$TMP/sec.log" || fail "the peer's name is not escaped in the log: $(grep replicating "$TMP/sec.log" | od -c | head -3)"
if LC_ALL=C grep -q $'\e' "$TMP/sec.log"; then fail "an escape character from the peer reached the log"; fi
if grep -q "^forged" "$TMP/sec.log"; then fail "the peer forged a log line"; fi
# 5. the secondary is lost, the VM runs on unprotected and halts with 3:
# protect ends 0, not 3 (3 means a failover)
kill -9 $SEC; wait $SEC 2>/dev/null || true
wait_for "$TMP/pri.log" "UNPROTECTED" 20
st=0; wait_exit $PRI 60 || st=$?; [ "$st" = 0 ] || fail "remus protect exited $st after the guest halted with code 3"
grep -q "guest halted with code 3" "$TMP/pri.log" || fail "the guest's halt code is not logged"
echo "busy: $(grep -o 'cannot connect.*' "$TMP/pri2.log" | head -1 | cut -c1-140); protect exit 0 after guest code 3"

# 3. the fence command: REMUS_NAME is --name, not the peer's name
ip netns exec "$NS" "$REMUS" receive --listen 127.0.0.1:7862 $HB --name localvm \
    --fence-cmd "env > $TMP/fence.env" > "$TMP/sec3.log" 2>&1 & SEC=$!; PIDS+=($SEC)
sleep 0.3
ip netns exec "$NS" "$REMUS" protect -i 20 $HB --progress 0 --name "$EVIL" --image "$TMP/idle.elf" \
    --memory 16 --console "$TMP/p3.console" "$TMP/t.cfg" 127.0.0.1:7862 > "$TMP/pri3.log" 2>&1 & PRI=$!; PIDS+=($PRI)
wait_for "$TMP/sec3.log" "replicating" 20
sleep 0.5
kill -9 $PRI; wait $PRI 2>/dev/null || true
wait_for "$TMP/sec3.log" "FAILOVER" 20
[ -s "$TMP/fence.env" ] || fail "the fence command did not run"
grep -qx "REMUS_NAME=localvm" "$TMP/fence.env" || fail "REMUS_NAME is not --name: $(grep REMUS_NAME "$TMP/fence.env")"
[ ! -e "$TMP/pwned" ] || fail "the peer's name ran a command"
kill -TERM $SEC; wait_exit $SEC 20 || true
echo "fence: $(grep REMUS_ "$TMP/fence.env" | sort | tr '\n' ' ')"

# -- 8. key files ----------------------------------------------------------------------------
scenario "8. key files"
"$REMUS" keygen "$TMP/k1"
chmod 640 "$TMP/k1"
rc=0; timeout 10 "$REMUS" receive --listen 127.0.0.1:7863 --key-file "$TMP/k1" 2> "$TMP/k1.err" || rc=$?
[ $rc = 1 ] || fail "a group-readable key file: exit $rc"
grep -q "k1' has mode 0640: it is readable by its group" "$TMP/k1.err" || fail "no reason: $(cat "$TMP/k1.err")"
head -c 32 /dev/urandom > "$TMP/k2"; chmod 600 "$TMP/k2"
rc=0; timeout 10 "$REMUS" receive --listen 127.0.0.1:7863 --key-file "$TMP/k2" 2> "$TMP/k2.err" || rc=$?
[ $rc = 1 ] || fail "32 raw bytes as a key file: exit $rc"
grep -q "holds 32 bytes: a key file is 64 hex digits and a newline" "$TMP/k2.err" || fail "no reason: $(cat "$TMP/k2.err")"
echo "key files: $(tail -1 "$TMP/k1.err" | cut -c1-120)"
echo "kvm_local: all checks passed"
