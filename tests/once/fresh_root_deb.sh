#!/usr/bin/env bash
# The Debian package on a clean Debian 12: `make deb`, then, in the
# pristine debootstrap root that tests/once/fresh_root.sh keeps (reused,
# never built a second time: an overlay on top of it takes every change,
# the cached root stays as it was), `apt-get install ./remus_*.deb`
# resolves its dependencies (dh_shlibdeps's), `remus --version` is the
# package's version, `man remus` (man-db installed there) renders the
# three pages, the units are not enabled, the receive unit's command runs
# (READY=1 on a notify socket; curl of its --metrics passes promtool),
# and, with the host's /dev bound in for /dev/kvm, `remus drill` passes
# there and the units' commands of a protect/receive pair protect the
# package's guest (unit_pair, below).  Runs after fresh_root.sh,
# which builds the root on its first run.
set -euo pipefail
. "$ROOT/tests/lib/wait.sh"
cd "$ROOT"
[ "$(id -u)" = 0 ] || { echo "fresh_root_deb: needs root (mount, chroot)"; exit 1; }
CACHE=${FRESH_ROOT_CACHE:-/var/cache/remus/fresh-root}
base=$(ls -d "$CACHE"/base-*.done 2>/dev/null | head -1 | sed 's/\.done$//')
[ -n "$base" ] && [ -d "$base" ] ||
    { echo "fresh_root_deb: no fresh Debian 12 root in $CACHE: tests/once/fresh_root.sh (make check-fresh-root) builds it"; exit 1; }
TMP=$(mktemp -d /tmp/remus-deb.XXXXXX)
root=$TMP/root
mounts=()
netns=
pids=()   # what runs in the root: ended before it is unmounted
cleanup() {
    local m p
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ((m = ${#mounts[@]} - 1; m >= 0; m--)); do umount -l "${mounts[m]}" 2>/dev/null || true; done
    if [ -n "$netns" ]; then ip netns del "$netns" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }

# unit_pair: remus-receive@vm2 and remus-protect@vm2 as systemd runs them
# (each unit's ExecStart with its Environment=, EnvironmentFile=,
# NOTIFY_SOCKET and WATCHDOG_USEC), both in the fresh root, in a network
# namespace of their own (loopback between them, their TAPs), protecting
# the package's guest: the secondary says READY=1 while it waits, the
# primary READY=1 after its first acknowledged checkpoint, then
# "STATUS=protecting epoch N" and WATCHDOG=1; the primary's --metrics pass
# promtool; the units' stop (ExecStop's SIGTERM) ends the protection
# cleanly: the secondary exits 0, the primary says STOPPING=1 and exits 0
# on systemd's own SIGTERM a second later.
unit_cmd() {   # unit_cmd SIDE NAME: the unit's ExecStart, %i replaced
    sed -n 's/^ExecStart=//p' "$root/lib/systemd/system/remus-$1@.service" | sed "s/%i/$2/g"
}
unit_pair() {
    local ns=rmdeb$$ lp mp rcv pri nr np
    read -r lp mp < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
    cat > "$root/etc/remus/vm2.vm" <<EOV
name = vm2
memory = 64
vcpus = 1
image = /usr/lib/remus/guest/remus-guest.elf
ip = 10.78.0.2
netmask = 255.255.255.0
tap = tdebp
EOV
    cat > "$root/etc/remus/vm2.conf" <<EOC
REMUS_VM=/etc/remus/vm2.vm
REMUS_LISTEN=127.0.0.1:$lp
REMUS_PEER=127.0.0.1:$lp
REMUS_INTERVAL=50
REMUS_PROTECT_OPTS="--metrics 127.0.0.1:$mp --progress 0"
REMUS_RECEIVE_OPTS="--tap tdebs --progress 0"
EOC
    ip netns add "$ns"; netns=$ns
    ip netns exec "$ns" ip link set lo up
    python3 tests/support/notify_listen.py "$root/run/notify-r.sock" "$TMP/notify-r.log" & nr=$!; pids+=($nr)
    python3 tests/support/notify_listen.py "$root/run/notify-p.sock" "$TMP/notify-p.log" & np=$!; pids+=($np)
    wait_until 10 "the notify sockets" test -S "$root/run/notify-r.sock" -a -S "$root/run/notify-p.sock"
    # (ip netns exec execs chroot, which execs env, sh and remus: $! is remus)
    ip netns exec "$ns" chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 REMUS_KEY_FILE=/etc/remus/remus.key NOTIFY_SOCKET=/run/notify-r.sock \
        WATCHDOG_USEC=30000000 sh -c 'set -a; . /etc/remus/vm2.conf; set +a; exec "$@"' sh \
        $(unit_cmd receive vm2) > "$TMP/unit-r.log" 2>&1 & rcv=$!; pids+=($rcv)
    wait_until 10 "READY=1 from remus-receive@vm2" in_file "$TMP/notify-r.log" "READY=1" ||
        { cat "$TMP/unit-r.log"; exit 1; }
    ip netns exec "$ns" chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 REMUS_KEY_FILE=/etc/remus/remus.key NOTIFY_SOCKET=/run/notify-p.sock \
        WATCHDOG_USEC=30000000 sh -c 'set -a; . /etc/remus/vm2.conf; set +a; exec "$@"' sh \
        $(unit_cmd protect vm2) > "$TMP/unit-p.log" 2>&1 & pri=$!; pids+=($pri)
    wait_until 60 "READY=1 from remus-protect@vm2" in_file "$TMP/notify-p.log" "READY=1" ||
        { cat "$TMP/unit-p.log" "$TMP/unit-r.log"; exit 1; }
    wait_until 10 "STATUS=protecting epoch from remus-protect@vm2" \
        in_file "$TMP/notify-p.log" "STATUS=protecting epoch" || { cat "$TMP/unit-p.log"; exit 1; }
    wait_until 10 "WATCHDOG=1 from remus-protect@vm2" in_file "$TMP/notify-p.log" "WATCHDOG=1" ||
        { cat "$TMP/unit-p.log"; exit 1; }
    ip netns exec "$ns" curl -sSf --max-time 5 "http://127.0.0.1:$mp/metrics" > "$TMP/metrics-p.txt"
    promtool check metrics < "$TMP/metrics-p.txt" || { cat "$TMP/metrics-p.txt"; exit 1; }
    grep -qx 'remus_state{state="protecting"} 1' "$TMP/metrics-p.txt" ||
        { grep remus_state "$TMP/metrics-p.txt"; echo "remus-protect@vm2's metrics: not protecting"; exit 1; }
    grep -qx 'remus_info{name="vm2",role="primary",backend="kvm"} 1' "$TMP/metrics-p.txt"
    echo "remus-protect@vm2 and remus-receive@vm2: READY=1, $(grep -o 'STATUS=protecting epoch [0-9]*' "$TMP/notify-p.log" | tail -1), the primary's metrics pass promtool"
    # systemctl stop remus-protect@vm2: ExecStop's SIGTERM ends the
    # protection; the secondary discards its replica and exits 0 ...
    kill -TERM $pri
    wait $rcv || { cat "$TMP/unit-r.log"; echo "remus-receive@vm2 did not exit 0 after the protection's stop"; exit 1; }
    # ... and systemd's own SIGTERM, a second later, stops the VM.
    sleep 1
    kill -TERM $pri
    wait $pri || { cat "$TMP/unit-p.log"; echo "remus-protect@vm2 did not exit 0 on its stop"; exit 1; }
    grep -q "STOPPING=1" "$TMP/notify-p.log" || { echo "remus-protect@vm2 did not say STOPPING=1"; exit 1; }
    kill $nr $np; wait $nr $np 2> /dev/null || true
    echo "the units' stop: remus-receive@vm2 and remus-protect@vm2 exit 0"
}

scenario "make deb"
make -s --no-print-directory deb BUILD=build > "$TMP/deb.log" 2>&1 || { tail -30 "$TMP/deb.log"; exit 1; }
deb=$(ls build/deb/remus_*_amd64.deb)
version=$(dpkg-deb -f "$deb" Version)
echo "built $deb ($(du -k "$deb" | cut -f1) KiB); Depends: $(dpkg-deb -f "$deb" Depends | cut -c1-120)..."
# lintian: nothing beyond the overrides debian/README.source explains
if grep -E '^[EW]: ' build/deb/lintian.txt; then echo "lintian reports the tags above"; exit 1; fi

scenario "install into the fresh root"
mkdir -p "$TMP/upper" "$TMP/work" "$root"
mount -t overlay overlay -o "lowerdir=$base,upperdir=$TMP/upper,workdir=$TMP/work" "$root"; mounts+=("$root")
mount -t proc proc "$root/proc"; mounts+=("$root/proc")
mount --rbind /sys "$root/sys"; mounts+=("$root/sys")
mount --bind /dev "$root/dev"; mounts+=("$root/dev")
mount -t tmpfs tmpfs "$root/run"; mounts+=("$root/run")
cp /etc/resolv.conf "$root/etc/resolv.conf"
# A Debian 12 machine's sources: the release, its updates and security.
rm -f "$root/etc/apt/sources.list"
cat > "$root/etc/apt/sources.list.d/debian.sources" <<EOS
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
if in_root dpkg -s remus > /dev/null 2>&1; then echo "remus is already in the fresh root"; exit 1; fi
cp "$deb" "$root/tmp/"
in_root apt-get update -q > "$TMP/update.log" 2>&1 || { tail -20 "$TMP/update.log"; exit 1; }
in_root apt-get install -y -q "./tmp/$(basename "$deb")" > "$TMP/apt.log" 2>&1 ||
    { tail -30 "$TMP/apt.log"; echo "apt-get install ./$(basename "$deb") fails in the fresh root"; exit 1; }
echo "apt-get install: $(grep -c '^Setting up' "$TMP/apt.log") packages set up"
got=$(in_root remus --version)
[ "$got" = "remus $(sed 's/+/-/g' <<< "$version")" ] || { echo "the installed remus says '$got' (package $version)"; exit 1; }
echo "in the fresh root: $got"
for f in /usr/sbin/remus /usr/lib/ocf/resource.d/remus/remus /lib/systemd/system/remus-protect@.service \
         /lib/systemd/system/remus-receive@.service /etc/remus/example.conf \
         /usr/share/bash-completion/completions/remus; do
    [ -e "$root$f" ] || { echo "the package did not install $f"; exit 1; }
done
not_enabled() {   # no remus unit is enabled (wanted by a target) in the root
    if [ -n "$(find "$root/etc/systemd" -name 'remus*' 2>/dev/null)" ]; then
        echo "a remus unit is enabled: $(find "$root/etc/systemd" -name 'remus*')"; return 1
    fi
}
not_enabled

scenario "man pages"
in_root apt-get install -y -q --no-install-recommends man-db > "$TMP/man-db.log" 2>&1 || { tail -20 "$TMP/man-db.log"; exit 1; }
for page in "1 remus" "1 remus-drill" "5 remus.conf"; do
    in_root env MANWIDTH=80 man $page > "$TMP/page.txt" 2> "$TMP/page.err" ||
        { echo "man $page fails in the fresh root:"; cat "$TMP/page.err"; exit 1; }
    grep -q "^NAME" "$TMP/page.txt" || { echo "man $page renders no NAME"; exit 1; }
done
in_root env MANWIDTH=80 man remus > "$TMP/remus.txt"
grep -q -- "--heartbeat-timeout" "$TMP/remus.txt" || { echo "man remus lacks the options"; exit 1; }
in_root whatis remus-drill | grep -q "rehearse a failover" || { echo "whatis remus-drill: $(in_root whatis remus-drill 2>&1)"; exit 1; }
echo "man remus, man remus-drill, man 5 remus.conf render"

scenario "the units' command: remus-receive@vm1 with --metrics, under a notify socket"
# The receive unit's command as systemd runs it (its Environment=, the
# EnvironmentFile=, NOTIFY_SOCKET and WATCHDOG_USEC), waiting for its
# primary (no /dev/kvm needed): READY=1 arrives, and its --metrics
# endpoint, scraped with curl, passes promtool (both on the host).  The
# configuration is read with sh here: a value with blanks is quoted, as
# systemd's EnvironmentFile= also accepts.
read -r LP MP < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
in_root remus keygen /etc/remus/remus.key > /dev/null 2> "$TMP/keygen.log" ||
    { cat "$TMP/keygen.log"; exit 1; }
cat > "$root/etc/remus/vm1.conf" <<EOC
REMUS_VM=/etc/remus/example.vm
REMUS_LISTEN=127.0.0.1:$LP
REMUS_PEER=127.0.0.1:$LP
REMUS_RECEIVE_OPTS="--metrics 127.0.0.1:$MP"
EOC
python3 tests/support/notify_listen.py "$root/run/notify.sock" "$TMP/notify.log" & NL=$!; pids+=($NL)
wait_until 10 "the notify socket" test -S "$root/run/notify.sock"
exec_start=$(sed -n 's/^ExecStart=//p' "$root/lib/systemd/system/remus-receive@.service" | sed 's/%i/vm1/g')
# (chroot itself in the background, not in_root: $! is then the process
# that execs down to remus, which the SIGTERM below must reach)
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    REMUS_KEY_FILE=/etc/remus/remus.key NOTIFY_SOCKET=/run/notify.sock WATCHDOG_USEC=30000000 \
    sh -c 'set -a; . /etc/remus/vm1.conf; set +a; exec "$@"' sh $exec_start \
    > "$TMP/unit.log" 2>&1 & RCV=$!; pids+=($RCV)
wait_until 10 "READY=1 from remus-receive@vm1" in_file "$TMP/notify.log" "READY=1" ||
    { cat "$TMP/unit.log"; exit 1; }
curl -sSf --max-time 5 "http://127.0.0.1:$MP/metrics" > "$TMP/metrics.txt"
promtool check metrics < "$TMP/metrics.txt" || { cat "$TMP/metrics.txt"; exit 1; }
grep -qx 'remus_state{state="waiting"} 1' "$TMP/metrics.txt"
grep -qx 'remus_info{name="vm1",role="secondary",backend="kvm"} 1' "$TMP/metrics.txt"
kill -TERM $RCV
wait $RCV || { cat "$TMP/unit.log"; echo "remus-receive@vm1 did not exit 0 on SIGTERM"; exit 1; }
kill $NL; wait $NL 2> /dev/null || true
grep -q "STOPPING=1" "$TMP/notify.log"
echo "remus-receive@vm1: READY=1, its metrics pass promtool"

scenario "remus drill and a protect/receive unit pair in the fresh root"
# Both need /dev/kvm: skipped on a machine without it, loudly
# (tests/run-tests.sh reports the step skipped, and fails it where
# /dev/kvm exists).
if [ ! -c /dev/kvm ]; then
    echo "SKIPPED STEP (needs /dev/kvm): remus drill and the protect/receive unit pair in the fresh root: this machine has no /dev/kvm"
else
    [ -c "$root/dev/kvm" ] || { echo "no /dev/kvm in the fresh root, although /dev is bound in"; exit 1; }
    in_root remus drill --quiet --kill-after 2 --after 1 > "$TMP/drill.log" 2>&1 ||
        { tail -30 "$TMP/drill.log"; echo "remus drill fails in the fresh root"; exit 1; }
    grep -q "RESULT *PASS" "$TMP/drill.log" || { tail -20 "$TMP/drill.log"; echo "the drill did not pass"; exit 1; }
    echo "remus drill passes in the fresh root ($(grep -o 'acknowledged ops lost.*' "$TMP/drill.log"))"
    unit_pair
fi

# Negative controls, last (they break the root): an enabled unit is seen;
# a page the package lacks does not render; remus without one of the
# libraries dh_shlibdeps found does not run.
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -s /lib/systemd/system/remus-protect@.service "$root/etc/systemd/system/multi-user.target.wants/remus-protect@x.service"
must_fail "an enabled unit" not_enabled
must_fail "a man page the package lacks" in_root man remus-nosuchpage
in_root dpkg --purge --force-depends libsodium23 > /dev/null 2>&1
must_fail "remus with libsodium23 removed" in_root remus --version

# The cached root is untouched.
[ ! -e "$base/usr/sbin/remus" ] || { echo "the cached fresh root was changed"; exit 1; }
