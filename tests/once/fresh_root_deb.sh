#!/usr/bin/env bash
# The Debian package on a clean Debian 12: `make deb`, then, in the
# pristine debootstrap root that tests/once/fresh_root.sh keeps (reused,
# never built a second time: an overlay on top of it takes every change,
# the cached root stays as it was), `apt-get install ./remus_*.deb`
# resolves its dependencies (dh_shlibdeps's), `remus --version` is the
# package's version, `man remus` (man-db installed there) renders the
# three pages, the units are not enabled, the receive unit's command runs
# (READY=1 on a notify socket; curl of its --metrics passes promtool),
# and `remus drill` passes there
# (the host's /dev bound in, for /dev/kvm).  Runs after fresh_root.sh,
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
pids=()   # what runs in the root: ended before it is unmounted
cleanup() {
    local m p
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ((m = ${#mounts[@]} - 1; m >= 0; m--)); do umount -l "${mounts[m]}" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }

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

scenario "remus drill in the fresh root"
[ -c "$root/dev/kvm" ] || { echo "no /dev/kvm in the fresh root, although /dev is bound in"; exit 1; }
in_root remus drill --quiet --kill-after 2 --after 1 > "$TMP/drill.log" 2>&1 ||
    { tail -30 "$TMP/drill.log"; echo "remus drill fails in the fresh root"; exit 1; }
grep -q "RESULT *PASS" "$TMP/drill.log" || { tail -20 "$TMP/drill.log"; echo "the drill did not pass"; exit 1; }
echo "remus drill passes in the fresh root ($(grep -o 'acknowledged ops lost.*' "$TMP/drill.log"))"

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
