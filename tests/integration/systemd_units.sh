#!/usr/bin/env bash
# The systemd units remus-receive@.service and remus-protect@.service:
#  - `systemd-analyze verify` passes on both, as installed (make install
#    with prefix/sysconfdir in a scratch directory, so that every path they
#    name exists), and fails on a unit broken on purpose;
#  - the restart policy: exits 3 and 4 never restarted, others are;
#  - the pair runs under setpriv with the units' CapabilityBoundingSet=
#    and NoNewPrivileges=, reaching its TAPs in another namespace
#    (without CAP_SYS_ADMIN the primary cannot: its control);
#  - this machine runs no systemd (PID 1 is not systemd: no systemd-run),
#    so the units' own ExecStart lines (read from the installed files,
#    %i, Environment= and the EnvironmentFile= made from the example
#    config) run as a receive/protect pair on the KVM backend: checkpoints
#    are acknowledged; the protect unit's ExecStop lines then its
#    KillSignal end protection cleanly (the secondary exits 0); a second
#    pair fails over when the primary is killed and the receiver exits 3;
#  - remus-unit refuses a configuration without a required variable,
#    naming it (exit 2).
. "$ROOT/tests/lib/kvm.sh"
B=$(basename "$BUILD")
asan=0; if [ "$B" = build-asan ]; then asan=1; fi
if [ -n "${REMUS_TEST_INSTALLED:-}" ]; then
    # Installed before this machine booted, by the same make install
    # (the nested KVM lab, lab/kvm/run.sh: its root has no build tools).
    I=$REMUS_TEST_INSTALLED/$B
    [ -x "$I/usr/sbin/remus" ] || { echo "REMUS_TEST_INSTALLED: no $I/usr/sbin/remus"; exit 1; }
    echo "installed by make install prefix=$I/usr sysconfdir=$I/etc before the machine booted"
    # what a run before this one (a retry) wrote
    rm -f "$I/etc/remus/remus.key" "$I/etc/remus/tguest.vm" \
        "$I/etc/remus/tguest.conf" "$I/etc/remus/nopeer.conf"
else
    I=$TMP/inst
    make -s --no-print-directory -C "$ROOT" BUILD="$B" ASAN=$asan install \
        prefix="$I/usr" sysconfdir="$I/etc" > "$TMP/install.log"
fi
U=$I/usr/lib/systemd/system

scenario "systemd-analyze verify"
echo "PID 1 here: $(ps -p 1 -o comm=)"
for u in remus-receive@vm1.service remus-protect@vm1.service; do
    SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$U/$u" > "$TMP/verify.log" 2>&1 ||
        { echo "systemd-analyze verify $u fails:"; cat "$TMP/verify.log"; exit 1; }
    [ ! -s "$TMP/verify.log" ] || { echo "systemd-analyze verify $u warns:"; cat "$TMP/verify.log"; exit 1; }
done
echo "systemd-analyze verify: both units clean"
mkdir "$TMP/broken"
sed 's|^ExecStart=\([^ ]*\)|ExecStart=\1.missing|' "$U/remus-protect@.service" > "$TMP/broken/remus-protect@.service"
must_fail "a unit whose ExecStart names a missing program" \
    systemd-analyze verify --man=no "$TMP/broken/remus-protect@vm1.service"
for u in receive protect; do
    f=$U/remus-$u@.service
    grep -qx 'RestartPreventExitStatus=3 4' "$f" || { echo "$u: exits 3 and 4 are not kept from a restart"; exit 1; }
    grep -qx 'Restart=on-failure' "$f" || { echo "$u: not Restart=on-failure"; exit 1; }
    grep -qx 'Type=notify' "$f" || { echo "$u: not Type=notify"; exit 1; }
    grep -qx 'NotifyAccess=main' "$f" || { echo "$u: not NotifyAccess=main"; exit 1; }
    grep -qx 'WatchdogSec=30' "$f" || { echo "$u: no WatchdogSec=30"; exit 1; }
done

# unit_argv UNIT INSTANCE KEY: KEY (ExecStart, ExecStop) of the installed
# UNIT as systemd would run it: "env -i" with Environment= and then the
# EnvironmentFile= assignments, and the command with %i/%% expanded,
# shell-quoted for eval.  $MAINPID is left for the caller.  ExecStart runs
# under setpriv with the unit's CapabilityBoundingSet= and NoNewPrivileges=
# ($DROP_CAP, a test's, takes one more capability away).
unit_argv() {
    python3 - "$U/$1" "$2" "$3" "${DROP_CAP:-}" <<'PY'
import shlex, sys
path, inst, key, drop = sys.argv[1:]
env, cmds, caps, nnp = [], [], None, False
def spec(s):
    return s.replace('%i', inst).replace('%%', '%')
for line in open(path).read().splitlines():
    if '=' not in line or line.startswith('#'):
        continue
    k, v = line.split('=', 1)
    if k == 'Environment':
        env += shlex.split(spec(v))
    elif k == 'EnvironmentFile':
        for l in open(spec(v)).read().splitlines():
            l = l.strip()
            if not l or l.startswith('#'):
                continue
            n, val = l.split('=', 1)
            if len(val) >= 2 and val[0] == val[-1] and val[0] in '"\'':
                val = val[1:-1]
            env.append(n + '=' + val)
    elif k == 'CapabilityBoundingSet':
        caps = [c.lower().replace('cap_', '') for c in v.split()]
    elif k == 'NoNewPrivileges':
        nnp = v == 'yes'
    elif k == key:
        cmds.append(shlex.split(spec(v)))
pre = []
if key == 'ExecStart':
    if caps is None:
        sys.exit('%s: no CapabilityBoundingSet=' % path)
    caps = [c for c in caps if c != drop]
    pre = ['setpriv', '--bounding-set', ','.join(['-all'] + ['+' + c for c in caps])]
    if nnp:
        pre.append('--no-new-privs')
for c in cmds:
    print(' '.join(shlex.quote(w) for w in
                   pre + ['env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin'] + env + c))
PY
}

# The example config, with this test's VM, addresses, key and options.
# The guest's TAPs and its clients are in the namespace $NS, the pair in
# ${NS}r, where it reaches its TAPs by setns() (--tap-netns, tap_netns):
# what the units' CAP_SYS_ADMIN is for.
ns_setup tapp taps
ip netns add "${NS}r"
trap 'cleanup; ip netns del "${NS}r" 2>/dev/null || true' EXIT
ip -n "${NS}r" link set lo up
mkdir -p "$I/etc/remus"
"$REMUS" keygen "$I/etc/remus/remus.key" > /dev/null
guest_cfg "$I/etc/remus/tguest.vm" tapp "dirty_rate=2000 dirty_wss=500" 1
echo "tap_netns = $NS" >> "$I/etc/remus/tguest.vm"
sed -e "s|^REMUS_VM=.*|REMUS_VM=$I/etc/remus/tguest.vm|" \
    -e "s|^REMUS_LISTEN=.*|REMUS_LISTEN=127.0.0.1:7790|" \
    -e "s|^REMUS_PEER=.*|REMUS_PEER=127.0.0.1:7790|" \
    "$I/etc/remus/example.conf" > "$I/etc/remus/tguest.conf"
cat >> "$I/etc/remus/tguest.conf" <<EOC
REMUS_PROTECT_OPTS=--progress 0 --stats-file $TMP/stats --console $TMP/pri.console
REMUS_RECEIVE_OPTS=--tap taps --tap-netns $NS
EOC
grep -q '^REMUS_INTERVAL=200$' "$I/etc/remus/tguest.conf" || { echo "the example config lost REMUS_INTERVAL"; exit 1; }
# The units' binary is the installed one (the same build as $REMUS).
recv_cmd=$(unit_argv remus-receive@.service tguest ExecStart)
prot_cmd=$(unit_argv remus-protect@.service tguest ExecStart)
echo "receive unit runs: ${recv_cmd##*PATH=/usr/sbin:/usr/bin:/sbin:/bin }" | cut -c1-300
listening() { ip netns exec "${NS}r" ss -ltn | grep -q '127.0.0.1:7790 '; }
start_pair() {   # start_pair N
    : > "$TMP/stats"
    # One exec chain (ip netns exec, env, remus-unit, remus): $! is remus.
    eval "ip netns exec \"\${NS}r\" $recv_cmd > \"\$TMP/sec$1.log\" 2>&1 &"; SEC=$!; PIDS+=($SEC)
    wait_until 10 "the receiver listening" listening ||
        { cat "$TMP/sec$1.log"; return 1; }
    eval "ip netns exec \"\${NS}r\" $prot_cmd > \"\$TMP/pri$1.log\" 2>&1 &"; PRI=$!; PIDS+=($PRI)
    kv 1 1 "INCR a" "INCR a" | tail -1 | grep -q "^2 OK 2 " ||
        { echo "the protected guest does not answer"; cat "$TMP/pri$1.log"; return 1; }
    wait_until 30 "five checkpoints acknowledged" lines_at_least "$TMP/stats" 5 ||
        { cat "$TMP/pri$1.log" "$TMP/sec$1.log"; return 1; }
    echo "pair $1: $(wc -l < "$TMP/stats") checkpoints acknowledged"
}

scenario "the units' pair: clean stop"
start_pair 1
# The pair runs with the unit's capabilities only.
bnd=$(awk '/^CapBnd:/ {print $2}' /proc/$PRI/status)
[ "$bnd" = "$(awk '/^CapBnd:/ {print $2}' /proc/$SEC/status)" ] || { echo "the two sides' bounding sets differ"; exit 1; }
[ "$bnd" != "$(awk '/^CapBnd:/ {print $2}' /proc/self/status)" ] || { echo "protect runs with every capability"; exit 1; }
echo "bounding set of both sides: $bnd ($(grep -o '^CapabilityBoundingSet=.*' "$U/remus-protect@.service"))"
# ... which are enough to park the vCPUs at SCHED_FIFO during a pause
# (CAP_SYS_NICE, RestrictRealtime=no): remus would say it could not.
if grep -q "pauses wait for the scheduler" "$TMP/pri1.log"; then
    cat "$TMP/pri1.log"; echo "the protect unit cannot raise its vCPUs' priority"; exit 1
fi
chrt -f 1 true || { echo "this test cannot use SCHED_FIFO itself"; exit 1; }
# (the check can fail: without CAP_SYS_NICE, SCHED_FIFO is refused)
must_fail "SCHED_FIFO without CAP_SYS_NICE" \
    setpriv --inh-caps=-sys_nice --bounding-set=-sys_nice chrt -f 1 true
tr '\0' ' ' < /proc/$PRI/cmdline | grep -q -- "protect --key-file $I/etc/remus/remus.key --heartbeat 100 -i 200 --progress 0" ||
    { echo "protect's command line is not the config's:"; tr '\0' ' ' < /proc/$PRI/cmdline; echo; exit 1; }
tr '\0' ' ' < /proc/$SEC/cmdline | grep -q -- "receive --key-file $I/etc/remus/remus.key --heartbeat 100 --listen 127.0.0.1:7790 --name tguest --config $I/etc/remus/tguest.vm --tap taps --tap-netns $NS" ||
    { echo "receive's command line is not the config's:"; tr '\0' ' ' < /proc/$SEC/cmdline; echo; exit 1; }
# systemctl stop: the ExecStop lines with $MAINPID, then KillSignal.
while read -r stop; do
    eval "${stop//\$MAINPID/$PRI}"
done < <(unit_argv remus-protect@.service tguest ExecStop)
wait_for "$TMP/pri1.log" "protection stopped after" 5
kill -TERM $PRI 2>/dev/null || true
rc=0; wait_exit $PRI 10 || rc=$?
[ "$rc" = 0 ] || { echo "protect exited $rc after a stop, not 0"; cat "$TMP/pri1.log"; exit 1; }
rc=0; wait_exit $SEC 10 || rc=$?
[ "$rc" = 0 ] || { echo "receive exited $rc after a clean stop, not 0"; cat "$TMP/sec1.log"; exit 1; }
grep -q "the replica is discarded" "$TMP/sec1.log" || { echo "the secondary did not discard its replica"; cat "$TMP/sec1.log"; exit 1; }
echo "stop: protection ended cleanly, both exited 0"

scenario "the units' pair: failover"
start_pair 2
kill -9 $PRI
wait_for "$TMP/sec2.log" "FAILOVER" 10
kv 1 5 "GET a" | grep -q "^5 OK 2 " || { echo "the replica does not answer with the acknowledged value"; exit 1; }
kill -TERM $SEC
rc=0; wait_exit $SEC 10 || rc=$?
[ "$rc" = 3 ] || { echo "receive exited $rc after a failover, not 3 (RestartPreventExitStatus)"; exit 1; }
echo "failover: $(grep -o 'FAILOVER.*' "$TMP/sec2.log" | cut -c1-100); receive exited 3"

scenario "capabilities: without CAP_SYS_ADMIN"
# Negative control of the bounding set: without CAP_SYS_ADMIN the primary
# cannot enter its TAP's namespace, and fails at once.
nocap_cmd=$(DROP_CAP=sys_admin unit_argv remus-protect@.service tguest ExecStart)
rc=0; eval "timeout -k 2 20 ip netns exec \"\${NS}r\" $nocap_cmd" > "$TMP/nocap.log" 2>&1 || rc=$?
[ "$rc" != 0 ] || { echo "protect ran without CAP_SYS_ADMIN"; exit 1; }
[ "$rc" != 124 ] || { echo "protect without CAP_SYS_ADMIN did not fail within 20 s"; cat "$TMP/nocap.log"; exit 1; }
grep -q "entering network namespace '$NS': Operation not permitted" "$TMP/nocap.log" ||
    { echo "protect without CAP_SYS_ADMIN failed otherwise (exit $rc):"; cat "$TMP/nocap.log"; exit 1; }
echo "without CAP_SYS_ADMIN: exit $rc, $(grep -m1 'not permitted' "$TMP/nocap.log" | cut -c1-160)"

scenario "remus-unit refusals"
grep -v '^REMUS_PEER=' "$I/etc/remus/tguest.conf" > "$I/etc/remus/nopeer.conf"
sed -i "s|^REMUS_VM=.*|REMUS_VM=$I/etc/remus/tguest.vm|" "$I/etc/remus/nopeer.conf"
rc=0; eval "$(unit_argv remus-protect@.service nopeer ExecStart)" > "$TMP/np.log" 2>&1 || rc=$?
[ "$rc" = 2 ] || { echo "remus-unit without REMUS_PEER exited $rc, not 2"; cat "$TMP/np.log"; exit 1; }
grep -q "REMUS_PEER (the secondary's HOST:PORT) is not set in $I/etc/remus/nopeer.conf" "$TMP/np.log" ||
    { echo "the missing REMUS_PEER is not named:"; cat "$TMP/np.log"; exit 1; }
echo "refused: $(cat "$TMP/np.log")"
