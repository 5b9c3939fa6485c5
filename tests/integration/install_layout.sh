#!/usr/bin/env bash
# `make install DESTDIR=...` installs exactly the expected files, where the
# GNU variables say (PREFIX default /usr/local; prefix=/usr sysconfdir=/etc
# as the Debian package does); the installed remus runs through its sbin
# symlink and finds its guest image; the units name the installed paths;
# the bash completion completes the real commands and options.
set -euo pipefail
. "$ROOT/tests/lib/wait.sh"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
B=$(basename "$BUILD")
asan=0; if [ "$B" = build-asan ]; then asan=1; fi   # the same build's flags
mk() { make -s --no-print-directory -C "$ROOT" BUILD="$B" ASAN=$asan "$@"; }

listing() {   # listing DIR: every file and symlink under DIR, sorted
    (cd "$1" && find . \( -type f -o -type l \) | sed 's|^\./|/|' | LC_ALL=C sort)
}
expected() {   # expected PREFIX SYSCONFDIR: the files install must make
    local p=$1 e=$2
    LC_ALL=C sort <<EOL
$p/sbin/remus
$p/lib/remus/remus
$p/lib/remus/remus-unit
$p/lib/remus/guest/remus-guest.elf
$p/lib/ocf/resource.d/remus/remus
$p/lib/systemd/system/remus-protect@.service
$p/lib/systemd/system/remus-receive@.service
$p/share/man/man1/remus.1
$p/share/man/man1/remus-drill.1
$p/share/man/man5/remus.conf.5
$p/share/bash-completion/completions/remus
$p/share/remus/grafana/remus.json
$e/remus/example.conf
$e/remus/example.vm
EOL
}
same_files() {   # same_files DIR PREFIX SYSCONFDIR
    diff <(expected "$2" "$3") <(listing "$1") > "$TMP/diff" ||
        { echo "install in $1: expected (<) and installed (>) differ:"; cat "$TMP/diff"; return 1; }
}

scenario "default prefix"
mk install DESTDIR="$TMP/d1" > "$TMP/install1.log"
same_files "$TMP/d1" /usr/local /usr/local/etc
echo "make install DESTDIR: $(listing "$TMP/d1" | wc -l) files as expected under /usr/local"
must_fail "a file more" bash -c "touch '$TMP/d1/usr/local/lib/remus/stray'; $(declare -f listing expected same_files); TMP='$TMP' same_files '$TMP/d1' /usr/local /usr/local/etc"
rm -f "$TMP/d1/usr/local/lib/remus/stray"
v=$("$TMP/d1/usr/local/sbin/remus" --version)
[ "$v" = "$("$REMUS" --version)" ] || { echo "the installed remus says '$v'"; exit 1; }
[ "$(readlink -f "$TMP/d1/usr/local/sbin/remus")" = "$TMP/d1/usr/local/lib/remus/remus" ] ||
    { echo "sbin/remus does not lead to lib/remus/remus"; exit 1; }
cmp -s "$TMP/d1/usr/local/lib/ocf/resource.d/remus/remus" "$ROOT/ocf/remus" ||
    { echo "the OCF agent installed is not ocf/remus"; exit 1; }
[ -x "$TMP/d1/usr/local/lib/ocf/resource.d/remus/remus" ] || { echo "the OCF agent is not executable"; exit 1; }

scenario "prefix=/usr sysconfdir=/etc"
mk install DESTDIR="$TMP/d2" prefix=/usr sysconfdir=/etc > "$TMP/install2.log"
same_files "$TMP/d2" /usr /etc
u=$TMP/d2/usr/lib/systemd/system
grep -qx 'ExecStart=/usr/lib/remus/remus-unit protect %i' "$u/remus-protect@.service" ||
    { echo "remus-protect@.service does not run /usr/lib/remus/remus-unit"; grep ExecStart "$u/remus-protect@.service"; exit 1; }
grep -qx 'EnvironmentFile=/etc/remus/%i.conf' "$u/remus-receive@.service" ||
    { echo "remus-receive@.service does not read /etc/remus/%i.conf"; exit 1; }
grep -q '^REMUS=${REMUS_BIN:-/usr/sbin/remus}$' "$TMP/d2/usr/lib/remus/remus-unit" ||
    { echo "remus-unit does not run /usr/sbin/remus"; exit 1; }
if grep -rq '@[A-Z]*DIR@' "$TMP/d2"; then echo "a placeholder was left in an installed file"; exit 1; fi
echo "prefix=/usr: units and remus-unit name /usr/lib/remus, /usr/sbin and /etc/remus"

scenario "bash completion"
complete_words() {   # complete_words WORD...: what the completion offers for the last
    bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _remus; printf "%s\n" "${COMPREPLY[@]}"' \
        _ "$TMP/d1/usr/local/share/bash-completion/completions/remus" "$@"
}
export -f complete_words; export TMP
[ "$(complete_words remus prot)" = protect ] || { echo "'remus prot<TAB>' gives '$(complete_words remus prot)'"; exit 1; }
[ "$(complete_words remus receive --lis)" = --listen ] || { echo "'remus receive --lis<TAB>' gives '$(complete_words remus receive --lis)'"; exit 1; }
[ "$(complete_words remus -v protect --peer-t)" = --peer-timeout ] || { echo "'remus -v protect --peer-t<TAB>' fails"; exit 1; }
# Every command of `remus help` is offered.
# (captured first: grep -q ending a pipe early would fail it by SIGPIPE)
all=$(complete_words remus "")
for c in $("$REMUS" help | awk '/^Commands:/ {on=1; next} on && /^  [a-z]/ {print $1} on && /^$/ {exit}'); do
    grep -qx "$c" <<< "$all" || { echo "the completion does not offer '$c'"; exit 1; }
done
must_fail "an option protect does not have" bash -c "[ \"\$(complete_words remus protect --lis)\" = --listen ]"
echo "completion: commands and options as remus --help lists them"
