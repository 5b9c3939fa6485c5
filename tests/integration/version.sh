#!/usr/bin/env bash
# `remus --version` and `remus version` print the build's version: git
# describe of this checkout (VERSION's number and the commit when there is
# no tag), and a tree that is not a git checkout (a source package) takes
# VERSION.
set -euo pipefail
. "$ROOT/tests/lib/wait.sh"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
v1=$("$REMUS" --version)
v2=$("$REMUS" version)
echo "remus --version: $v1"
[ "$v1" = "$v2" ] || { echo "'remus version' says '$v2', '--version' says '$v1'"; exit 1; }
# What git says of this tree, computed here, not by the Makefile.
version_matches() {   # version_matches LINE: LINE names this tree's version
    local want
    if want=$(git -C "$ROOT" describe --tags 2>/dev/null); then
        want=${want#v}
    else
        want="$(cat "$ROOT/VERSION")-g$(git -C "$ROOT" describe --always)"
    fi
    case $1 in "remus $want"|"remus $want-dirty") return 0 ;; esac
    echo "'$1' is not 'remus $want[-dirty]'"; return 1
}
if [ "$(git -C "$ROOT" rev-parse --show-toplevel 2>/dev/null)" = "$ROOT" ]; then
    version_matches "$v1"
    must_fail "another commit's version" version_matches "remus $(cat "$ROOT/VERSION")-g0000000"
fi
# Global options still come first, and an unknown one is still refused.
[ "$("$REMUS" -q --version)" = "$v1" ] || { echo "-q --version differs"; exit 1; }
if "$REMUS" --versio 2> "$TMP/e"; then echo "--versio was accepted"; exit 1; fi
grep -q "unknown global option '--versio'" "$TMP/e" || { echo "--versio not named"; cat "$TMP/e"; exit 1; }
"$REMUS" --help | grep -q -- "--version" || { echo "remus --help does not mention --version"; exit 1; }
# Not a git checkout: the Makefile takes VERSION (make only evaluates it).
mkdir "$TMP/src"
(cd "$ROOT" && git ls-files -z | tar --null -T - -cf -) | tar -C "$TMP/src" -xf -
echo 9.8.7 > "$TMP/src/VERSION"
got=$(make -s --no-print-directory -C "$TMP/src" print-version)
[ "$got" = 9.8.7 ] || { echo "outside git the version is '$got', not VERSION's 9.8.7"; exit 1; }
echo "outside git: $got (VERSION)"
