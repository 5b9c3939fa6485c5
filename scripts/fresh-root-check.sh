#!/usr/bin/env bash
# Are the project's Debian packages enough on a fresh machine?
#   scripts/fresh-root-check.sh PACKAGE...   (the Makefile's DEB_PACKAGES)
# 1. A Debian 12 (bookworm) debootstrap --variant=minbase root, plus make
#    (the README's commands start with `make`), cached in
#    $FRESH_ROOT_CACHE (default /var/cache/remus/fresh-root) under a key of
#    this script: the pristine root is built once (about a minute).
# 2. A copy of it gets `make deps` of this tree (copied in: tracked files
#    only), the same install-deps.sh a newcomer's machine runs.  The
#    result is cached too, under a key of the package list and the install
#    script, so a changed list is tried afresh.
# 3. Checks, in that root: every external command that the test scripts,
#    the lab's host-side scripts, the soak and the OCF agent run exists
#    (tests/lint/commands.py finds them, parsed by bash); `make tests`
#    builds there (every header and library the build needs is installed);
#    and the README's first command, `make drill`, passes there (with the
#    host's /dev, /proc and /sys, as a machine has them).
# Older cached roots (another package list) are removed.
# A package missing from DEB_PACKAGES fails here, whatever the developer's
# own machine has.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ $# -ge 1 ] || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "fresh-root-check: needs root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "fresh-root-check: debootstrap is missing (make deps)" >&2; exit 1; }
CACHE=${FRESH_ROOT_CACHE:-/var/cache/remus/fresh-root}
mkdir -p "$CACHE"
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || { echo "fresh-root-check: cannot find apt's Debian mirror"; exit 1; }

RECIPE="debootstrap --variant=minbase --include=make bookworm"
base_key=$(echo "$RECIPE" | sha256sum | cut -c1-12)
base="$CACHE/base-$base_key"
if [ ! -f "$base.done" ]; then
    echo "fresh-root-check: debootstrap --variant=minbase bookworm (once; cached in $base)"
    rm -rf "$base"
    $RECIPE "$base" "$mirror" \
        > "$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log"; exit 1; }
    touch "$base.done"
fi

deps_key=$( { echo "$base_key"; printf '%s\n' "$@" | sort; cat scripts/install-deps.sh; } |
            sha256sum | cut -c1-12)
root="$CACHE/deps-$deps_key"
mounts=()
cleanup() {
    local m
    for ((m = ${#mounts[@]} - 1; m >= 0; m--)); do umount -l "${mounts[m]}" 2>/dev/null || true; done
}
trap cleanup EXIT
bind() { mount --bind "$1" "$2"; mounts+=("$2"); }
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }

copy_tree() {   # the tracked files of this tree into $root/src
    rm -rf "$root/src"; mkdir -p "$root/src"
    git ls-files -z | tar --null -T - -cf - | tar -C "$root/src" -xf -
}
for old in "$CACHE"/base-* "$CACHE"/deps-*; do   # other recipes, lists
    case $old in "$base"|"$base.done"|"$root"|"$root.done") ;; *) rm -rf "$old" ;; esac
done
if [ ! -f "$root.done" ]; then
    echo "fresh-root-check: make deps in a copy of the fresh root ($root)"
    rm -rf "$root"; cp -a "$base" "$root"
    copy_tree
    cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    mkdir -p "$root/proc" "$root/dev"
    mount -t proc proc "$root/proc"; mounts+=("$root/proc")
    bind /dev "$root/dev"
    # What a newcomer types: `make deps` (scripts/install-deps.sh, apt-get)
    if ! in_root make -C /src deps DEB_PACKAGES="$*" > "$CACHE/deps.log" 2>&1; then
        tail -30 "$CACHE/deps.log"; echo "fresh-root-check: make deps failed in the fresh root"; exit 1
    fi
    cleanup; mounts=()
    touch "$root.done"
fi
copy_tree

# Every external command the scripts run must be in the fresh root.
missing=0
while read -r cmd; do
    if ! in_root sh -c "command -v '$cmd'" > /dev/null; then
        echo "fresh-root-check: '$cmd' is run by $(grep -lw -- "$cmd" $(python3 tests/lint/commands.py --files) | head -3 | paste -sd ' ' -) but no Debian package in DEB_PACKAGES installs it"
        missing=$((missing + 1))
    fi
done < <(python3 tests/lint/commands.py)
n=$(python3 tests/lint/commands.py | wc -l)
[ "$n" -ge 40 ] || { echo "fresh-root-check: only $n commands found in the scripts: the finder is broken"; exit 1; }
[ "$missing" = 0 ] || exit 1
echo "fresh-root-check: all $n commands the scripts run are installed"

# ... and the project builds there.
mkdir -p "$root/proc"; mount -t proc proc "$root/proc"; mounts+=("$root/proc")
if ! in_root make -C /src -j2 tests > "$CACHE/build.log" 2>&1; then
    tail -30 "$CACHE/build.log"; echo "fresh-root-check: make tests fails in the fresh root"; exit 1
fi
echo "fresh-root-check: make tests builds in the fresh root"

# ... and the drill runs there: namespaces, TAPs and /dev/kvm as a fresh
# machine has them.
mkdir -p "$root/sys" "$root/dev" "$root/run"
mount --rbind /sys "$root/sys"; mounts+=("$root/sys")
bind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/run"; mounts+=("$root/run")
# A machine without /dev/kvm cannot run the drill: the step is reported
# skipped (tests/run-tests.sh fails it where /dev/kvm exists), never passed.
if [ ! -c /dev/kvm ]; then
    echo "SKIPPED STEP (needs /dev/kvm): make drill in the fresh root: this machine has no /dev/kvm"
    exit 0
fi
if ! in_root make -C /src drill DRILL_ARGS="--quiet --kill-after 2 --after 1" \
        > "$CACHE/drill.log" 2>&1; then
    tail -30 "$CACHE/drill.log"; echo "fresh-root-check: make drill fails in the fresh root"; exit 1
fi
grep -q "RESULT *PASS" "$CACHE/drill.log" || { tail -20 "$CACHE/drill.log"; echo "fresh-root-check: the drill did not pass"; exit 1; }
echo "fresh-root-check: make drill passes in the fresh root ($(grep -o 'acknowledged ops lost.*' "$CACHE/drill.log"))"
