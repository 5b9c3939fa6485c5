#!/usr/bin/env bash
# `remus protect VM HOST` starts its own receiver through -s CMD (#17):
# two host namespaces (primary 10.89.0.1, secondary 10.89.0.2), and as
# -s a stand-in for ssh that enters the secondary's namespace (HOST is
# its name) and hangs the command up (SIGHUP) when the process that
# started it dies, as a closed ssh session with a terminal does.  The key
# reaches the receiver on its stdin only (its environment has none).
#  a. checkpoints are acknowledged; a clean stop: the receiver exits 0 by
#     itself, the primary 0, nothing is left running;
#  b. kill -9 of the primary: the receiver does not die with the session:
#     it fails over, the replica answers, and it exits 3 when stopped;
#  c. a -s command that never announces, one that exits at once: the
#     error names the command and its stderr, within --peer-timeout;
#     usage errors;
#  d. the same through a real ssh (sshd in the secondary's namespace,
#     HOST root@10.89.0.2: the receiver listens on every address and is
#     reached at HOST without USER@): clean stop, then kill -9 of the
#     primary: the receiver outlives the session and takes over.
. "$ROOT/tests/lib/kvm.sh"
ns_setup tapp taps
NSP="${NS}p" NSS="${NS}s"
ip netns add "$NSP"; ip netns add "$NSS"
PIDS+=("")
trap 'cleanup; ip netns del "$NSP" 2>/dev/null || true; ip netns del "$NSS" 2>/dev/null || true' EXIT
ip link add rsp$$ netns "$NSP" type veth peer name rss$$ netns "$NSS"
ip -n "$NSP" addr add 10.89.0.1/24 dev rsp$$; ip -n "$NSP" link set rsp$$ up
ip -n "$NSS" addr add 10.89.0.2/24 dev rss$$; ip -n "$NSS" link set rss$$ up
ip -n "$NSP" link set lo up; ip -n "$NSS" link set lo up
KEY=$REMUS_KEY_FILE
guest_cfg "$TMP/g.cfg" tapp "dirty_rate=2000 dirty_wss=500" 1
echo "tap_netns = $NS" >> "$TMP/g.cfg"

# The stand-in for ssh: nsssh HOST COMMAND...; it records the command's
# pid, the hang-up it sent and its exit status in $SPAWN_DIR (pid, hup,
# rc).
export SPAWN_DIR="$TMP/spawn"
cat > "$TMP/nsssh" <<'EOF'
#!/usr/bin/env bash
ns=$1; shift
parent=$PPID
env -u REMUS_KEY_FILE ip netns exec "$ns" "$@" <&0 &
child=$!
echo "$child" > "$SPAWN_DIR/pid"
exec 2> /dev/null      # its own messages: the session may be gone
while kill -0 "$child" 2>/dev/null; do
    if ! kill -0 "$parent" 2>/dev/null; then   # the session is gone
        kill -HUP "$child" 2>/dev/null && echo "$child" > "$SPAWN_DIR/hup"
        break
    fi
    sleep 0.1
done
rc=0; wait "$child" || rc=$?
echo "$rc" > "$SPAWN_DIR/rc"
exit "$rc"
EOF
chmod +x "$TMP/nsssh"

# protect_spawn N [OPTION...]: protect the test VM, its receiver started
# in $NSS; PRI is its pid, $TMP/priN.log its log, $TMP/statsN its acks.
protect_spawn() {
    local n=$1; shift
    rm -rf "$SPAWN_DIR"; mkdir -p "$SPAWN_DIR"
    ip netns exec "$NSP" "$REMUS" protect -i 20 --heartbeat 50 \
        --heartbeat-timeout 1000 --progress 0 --key-file "$KEY" \
        --stats-file "$TMP/stats$n" --console "$TMP/pri$n.console" \
        -s "$TMP/nsssh" --remote-remus "$REMUS" --peer-addr 10.89.0.2 \
        --peer-opt=--tap=taps --peer-opt=--tap-netns="$NS" "$@" \
        "$TMP/g.cfg" "$NSS" > "$TMP/pri$n.log" 2>&1 & PRI=$!; PIDS+=($PRI)
}
# gone (tests/lib/wait.sh) waits for any process, not only our children.
must_fail "a live process is gone" gone $$ 1

# -- a. acknowledged checkpoints, a clean stop ------------------------------
scenario "a. checkpoints acknowledged, clean stop"
protect_spawn 1
wait_until 30 "five acknowledged checkpoints" lines_at_least "$TMP/stats1" 5 ||
    { cat "$TMP/pri1.log"; exit 1; }
grep -q "the receiver (pid [0-9]* here) listens: connecting to 10.89.0.2:" "$TMP/pri1.log" ||
    { echo "no 'connecting to' the announced address"; cat "$TMP/pri1.log"; exit 1; }
RPID=$(cat "$SPAWN_DIR/pid"); PIDS+=($RPID)
# Paired, it listens no more: another connection to its port is refused
# at once (not left waiting in the backlog).
RPORT=$(grep -o "connecting to 10.89.0.2:[0-9]*" "$TMP/pri1.log" | head -1 | cut -d: -f2)
if ip netns exec "$NSP" timeout 3 bash -c "exec 3<>/dev/tcp/10.89.0.2/$RPORT" 2> /dev/null; then
    echo "the paired receiver still accepts connections on port $RPORT"; exit 1
fi
# The key is on no command line: the receiver has --key-file -.
args=$(tr '\0' ' ' < "/proc/$RPID/cmdline")
hex=$(head -c 64 "$KEY")
case "$args" in *"--key-file -"*) ;; *) echo "receiver args: $args"; exit 1 ;; esac
case "$args" in *"$hex"*) echo "the key is on the receiver's command line"; exit 1 ;; esac
kv 1 1 "INCR a" "INCR a" | tail -1 | grep -q "^2 OK 2 " || { echo "the guest did not answer"; exit 1; }
kill -INT $PRI
# It exits by itself (END) while the VM runs on unprotected here.
wait_until 15 "the receiver's exit status" test -s "$SPAWN_DIR/rc" ||
    { echo "the receiver did not exit by itself after END"; cat "$TMP/pri1.log"; exit 1; }
[ "$(cat "$SPAWN_DIR/rc")" = 0 ] || { echo "receiver exit status $(cat "$SPAWN_DIR/rc"), not 0"; cat "$TMP/pri1.log"; exit 1; }
grep -q "the replica is discarded" "$TMP/pri1.log" || { echo "the receiver's log was not relayed"; exit 1; }
kill -INT $PRI            # now stop the VM
rc=0; wait_exit $PRI 10 || rc=$?
[ "$rc" = 0 ] || { echo "protect exited $rc after a clean stop, not 0"; cat "$TMP/pri1.log"; exit 1; }
grep -q "the receiver exited cleanly" "$TMP/pri1.log" || { echo "protect did not reap its receiver"; cat "$TMP/pri1.log"; exit 1; }
gone "$RPID" 5 || { echo "the receiver (pid $RPID) is left running"; exit 1; }

# -- b. the primary dies: the receiver takes over ---------------------------
scenario "b. kill -9 of the primary: the spawned receiver takes over"
protect_spawn 2
wait_until 30 "five acknowledged checkpoints" lines_at_least "$TMP/stats2" 5 ||
    { cat "$TMP/pri2.log"; exit 1; }
RPID=$(cat "$SPAWN_DIR/pid"); PIDS+=($RPID)
kv 2 1 "INCR b" "INCR b" "INCR b" | tail -1 | grep -q "^3 OK 3 " || { echo "the guest did not answer"; exit 1; }
kill -9 $PRI; wait $PRI 2>/dev/null || true
# The closed stream makes it take over at once; the hang-up follows.
hung_up_or_gone() { [ -s "$SPAWN_DIR/hup" ] || ! kill -0 "$RPID" 2>/dev/null; }
wait_until 10 "the stand-in for ssh hanging the receiver up" hung_up_or_gone
sleep 1                   # one that dies of it is gone by now
kill -0 "$RPID" 2>/dev/null ||
    { echo "the receiver died with its session (status $(cat "$SPAWN_DIR/rc" 2>/dev/null))"; cat "$TMP/pri2.log"; exit 1; }
[ "$(cat "$SPAWN_DIR/hup")" = "$RPID" ] || { echo "the stand-in hung up '$(cat "$SPAWN_DIR/hup")', not $RPID"; exit 1; }
# The primary's VM died with it: only the replica can answer now (kv
# retransmits for 5 s; a few tries).
for try in 1 2 3 4; do if kv 2 4 "GET b" > "$TMP/get" 2>/dev/null; then break; fi; done
[ -s "$TMP/get" ] || { echo "no replica answers after the primary's death"; cat "$TMP/pri2.log"; exit 1; }
grep -q "^4 OK 3 " "$TMP/get" || { echo "the replica answered: $(cat "$TMP/get")"; exit 1; }
kill -TERM "$RPID"
wait_until 15 "the receiver's exit status" test -s "$SPAWN_DIR/rc"
[ "$(cat "$SPAWN_DIR/rc")" = 3 ] || { echo "receiver exit status $(cat "$SPAWN_DIR/rc"), not 3 (a failover)"; exit 1; }

# -- c. refusals -------------------------------------------------------------
scenario "c. a receiver that never announces; usage errors"
cat > "$TMP/silent" <<'EOF'
#!/bin/sh
echo "silent: connected to $1, saying nothing" >&2
exec sleep 60
EOF
chmod +x "$TMP/silent"
rc=0
timeout 30 "$REMUS" protect --key-file "$KEY" -s "$TMP/silent" --peer-timeout 2000 \
    "$TMP/g.cfg" somehost > "$TMP/c1.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || { echo "never announcing: exit $rc, not 1"; cat "$TMP/c1.log"; exit 1; }
grep -q "the receiver did not announce its port within 2000 ms: it was killed; its stderr: silent: connected to somehost, saying nothing; the command: \`exec $TMP/silent somehost .* receive " "$TMP/c1.log" ||
    { echo "unclear error for a receiver that never announces:"; cat "$TMP/c1.log"; exit 1; }
if grep -q "$(head -c 64 "$KEY")" "$TMP/c1.log"; then echo "the key in a message"; exit 1; fi
rc=0
"$REMUS" protect --key-file "$KEY" -s "sh -c 'echo no such host >&2; exit 1'" \
    "$TMP/g.cfg" somehost > "$TMP/c2.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || { echo "a failing -s: exit $rc, not 1"; cat "$TMP/c2.log"; exit 1; }
grep -q "the receiver ended without announcing its port: it exited with status 1; its stderr: no such host; the command: \`exec sh -c " "$TMP/c2.log" ||
    { echo "unclear error for a failing -s command:"; cat "$TMP/c2.log"; exit 1; }
rc=0; "$REMUS" protect -s ssh "$TMP/g.cfg" 127.0.0.1:7999 2> "$TMP/c3.log" || rc=$?
[ "$rc" = 2 ] || { echo "-s with HOST:PORT: exit $rc, not 2"; cat "$TMP/c3.log"; exit 1; }
grep -q "give HOST without :PORT" "$TMP/c3.log" || { echo "-s with HOST:PORT:"; cat "$TMP/c3.log"; exit 1; }
rc=0; "$REMUS" protect --key-file "$KEY" --peer-opt '--fence-cmd=a b' "$TMP/g.cfg" h > "$TMP/c4.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || { echo "a word with a space: exit $rc, not 1"; cat "$TMP/c4.log"; exit 1; }
grep -q "'--fence-cmd=a b' cannot be passed to the remote receiver" "$TMP/c4.log" ||
    { echo "a word with a space:"; cat "$TMP/c4.log"; exit 1; }

# -- d. a real ssh -------------------------------------------------------------
scenario "d. through a real sshd"
SSHD=/usr/sbin/sshd
[ -x "$SSHD" ] || { echo "no $SSHD: install openssh-server (make deps)"; exit 1; }
S="$TMP/ssh"; mkdir -p "$S" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$S/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$S/id"
cp "$S/id.pub" "$S/authorized_keys"
cat > "$S/sshd_config" <<EOC
ListenAddress 10.89.0.2:2222
HostKey $S/hostkey
AuthorizedKeysFile $S/authorized_keys
PidFile $S/sshd.pid
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
SetEnv REMUS_RUN_DIR=$REMUS_RUN_DIR
EOC
ip netns exec "$NSS" "$SSHD" -D -f "$S/sshd_config" -E "$S/sshd.log" & PIDS+=($!)
SSH="ssh -F /dev/null -i $S/id -p 2222 -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
ssh_up() { ip netns exec "$NSP" $SSH root@10.89.0.2 true 2> /dev/null; }
wait_until 10 "sshd answering" ssh_up ||
    { cat "$S/sshd.log"; exit 1; }
# protect_ssh N: protect the test VM, its receiver started by ssh.
protect_ssh() {
    ip netns exec "$NSP" "$REMUS" protect -i 20 --heartbeat 50 \
        --heartbeat-timeout 1000 --progress 0 --key-file "$KEY" \
        --stats-file "$TMP/stats$1" --console "$TMP/pri$1.console" \
        -s "$SSH" --remote-remus "$REMUS" --peer-opt=--tap=taps \
        --peer-opt=--tap-netns="$NS" "$TMP/g.cfg" root@10.89.0.2 \
        > "$TMP/pri$1.log" 2>&1 & PRI=$!; PIDS+=($PRI)
}
# receiver_pid LOG: the receiver's pid, from its log lines relayed in LOG.
receiver_pid() { sed -n 's/^remus\[\([0-9]*\)\] secondary: replicating .*/\1/p' "$1" | head -1; }
protect_ssh 3
wait_until 30 "five acknowledged checkpoints" lines_at_least "$TMP/stats3" 5 ||
    { cat "$TMP/pri3.log"; exit 1; }
grep -q "listens: connecting to 10.89.0.2:" "$TMP/pri3.log" ||
    { echo "not connecting to HOST without USER@"; cat "$TMP/pri3.log"; exit 1; }
RPID=$(receiver_pid "$TMP/pri3.log"); PIDS+=($RPID)
[ -n "$RPID" ] || { echo "no receiver pid in the log"; cat "$TMP/pri3.log"; exit 1; }
kill -INT $PRI
gone "$RPID" 15 || { echo "the receiver over ssh did not exit after END"; exit 1; }
kill -INT $PRI
rc=0; wait_exit $PRI 10 || rc=$?
[ "$rc" = 0 ] || { echo "protect exited $rc after a clean stop, not 0"; cat "$TMP/pri3.log"; exit 1; }
grep -q "the receiver exited cleanly" "$TMP/pri3.log" ||
    { echo "the receiver over ssh did not end cleanly"; cat "$TMP/pri3.log"; exit 1; }

protect_ssh 4
wait_until 30 "five acknowledged checkpoints" lines_at_least "$TMP/stats4" 5 ||
    { cat "$TMP/pri4.log"; exit 1; }
RPID=$(receiver_pid "$TMP/pri4.log"); PIDS+=($RPID)
[ -n "$RPID" ] || { echo "no receiver pid in the log"; cat "$TMP/pri4.log"; exit 1; }
kv 4 1 "INCR d" "INCR d" | tail -1 | grep -q "^2 OK 2 " || { echo "the guest did not answer"; exit 1; }
# The primary's host dies: protect and its ssh client with it; sshd ends
# the session (the receiver's stdout and stderr close).
SSHPID=$(sed -n 's/.*the receiver (pid \([0-9]*\) here) listens.*/\1/p' "$TMP/pri4.log")
[ -n "$SSHPID" ] || { echo "no ssh pid in the log"; exit 1; }
SESSION=$(ps -o ppid= -p "$RPID" | tr -d ' ')     # sshd's session process
kill -9 $PRI "$SSHPID"; wait $PRI 2>/dev/null || true
session_gone() { ! kill -0 "$SESSION" 2>/dev/null; }
wait_until 10 "sshd ending the session" session_gone || { cat "$S/sshd.log"; exit 1; }
sleep 1
kill -0 "$RPID" 2>/dev/null || { echo "the receiver died with its ssh session"; cat "$S/sshd.log"; exit 1; }
for try in 1 2 3 4; do if kv 4 3 "GET d" > "$TMP/get4" 2>/dev/null; then break; fi; done
grep -q "^3 OK 2 " "$TMP/get4" || { echo "no replica answers after the primary's death: $(cat "$TMP/get4")"; exit 1; }
kill -TERM "$RPID"
gone "$RPID" 15 || { echo "the receiver over ssh did not end on SIGTERM"; exit 1; }
echo "ok"
