#!/usr/bin/env bash
# --help and the man pages may not disagree: for every subcommand, the
# options `remus CMD --help` lists (completion/help_options.py reads them
# from the binary) are exactly the options its section of the man source
# documents (man/remus.1.scd "## remus CMD", drill: man/remus-drill.1.scd
# OPTIONS), both ways; every command has its section and no section names
# a command that does not exist; the man pages render.
set -euo pipefail
. "$ROOT/tests/lib/wait.sh"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

# man_options MAN1 DRILL_MAN: "CMD OPT..." per documented command (an
# option is documented by a definition line: "*--opt* _ARG_" at the start
# of a line, several on one line allowed).
man_options() {
    python3 - "$1" "$2" <<'PY'
import re, sys
OPT = re.compile(r'\*(--?[A-Za-z][A-Za-z0-9-]*)\*')
def defs(lines):
    out = set()
    for l in lines:
        if l.startswith('*-'):
            out.update(OPT.findall(l))
    return out
sections, cur = {}, None
for l in open(sys.argv[1]).read().splitlines():
    m = re.match(r'^## remus (\S+)', l)
    if m:
        cur = m.group(1); sections[cur] = []; continue
    if l.startswith('#'):
        cur = None
    elif cur:
        sections[cur].append(l)
drill, on = [], False
for l in open(sys.argv[2]).read().splitlines():
    if l.startswith('#'):
        on = l.strip() == '# OPTIONS'
    elif on:
        drill.append(l)
sections['drill'] = drill
for cmd in sorted(sections):
    print(cmd, ' '.join(sorted(defs(sections[cmd]))))
PY
}
# compare HELP MAN: the two tables agree, command by command
compare() {
    python3 - "$1" "$2" <<'PY'
import sys
def load(p):
    return {l.split()[0]: set(l.split()[1:]) for l in open(p) if l.strip()}
h, m = load(sys.argv[1]), load(sys.argv[2])
bad = 0
for c in sorted(set(h) | set(m)):
    if c not in m:
        print("remus %s: no section in the man page" % c); bad += 1; continue
    if c not in h:
        print("man page section 'remus %s': no such command" % c); bad += 1; continue
    for o in sorted(h[c] - m[c]):
        print("remus %s %s: in --help, not in the man page" % (c, o)); bad += 1
    for o in sorted(m[c] - h[c]):
        print("remus %s %s: in the man page, not in --help" % (c, o)); bad += 1
print("%d commands compared, %d disagreements" % (len(set(h) | set(m)), bad))
sys.exit(1 if bad else 0)
PY
}
python3 "$ROOT/completion/help_options.py" "$REMUS" > "$TMP/help"
man_options "$ROOT/man/remus.1.scd" "$ROOT/man/remus-drill.1.scd" > "$TMP/man"
[ "$(wc -l < "$TMP/help")" -ge 14 ] || { echo "only $(wc -l < "$TMP/help") commands read from --help"; exit 1; }
compare "$TMP/help" "$TMP/man"

# Negative controls: an option taken out of the man source, one taken out
# of --help (as the table read from it), a section taken out.
sed '/^\*--peer-timeout\* /,+1d' "$ROOT/man/remus.1.scd" > "$TMP/cut.scd"
man_options "$TMP/cut.scd" "$ROOT/man/remus-drill.1.scd" > "$TMP/man.cut"
must_fail "--peer-timeout removed from the man source" compare "$TMP/help" "$TMP/man.cut"
sed 's/ --seed//' "$TMP/help" > "$TMP/help.cut"
must_fail "--seed removed from drill's --help" compare "$TMP/help.cut" "$TMP/man"
sed '/^## remus keygen/,/^## /{/^## remus keygen/d}' "$ROOT/man/remus.1.scd" > "$TMP/nokeygen.scd"
man_options "$TMP/nokeygen.scd" "$ROOT/man/remus-drill.1.scd" > "$TMP/man.nokeygen"
must_fail "the keygen section removed" compare "$TMP/help" "$TMP/man.nokeygen"

# Global options: those `remus --help` names are in GLOBAL OPTIONS.
for o in -v -q --version; do
    "$REMUS" --help | grep -q -- "$o" || { echo "remus --help does not name $o"; exit 1; }
    sed -n '/^# GLOBAL OPTIONS/,/^# COMMANDS/p' "$ROOT/man/remus.1.scd" | grep -q "^\*$o\*" ||
        { echo "the man page's GLOBAL OPTIONS lack $o"; exit 1; }
done

# They render (scdoc, then man without warnings).
for page in remus.1 remus-drill.1 remus.conf.5; do
    scdoc < "$ROOT/man/$page.scd" > "$TMP/$page"
    MANWIDTH=80 man -l "$TMP/$page" > "$TMP/$page.txt" 2> "$TMP/$page.err"
    [ ! -s "$TMP/$page.err" ] || { echo "man -l $page warns:"; cat "$TMP/$page.err"; exit 1; }
    grep -q "^NAME" "$TMP/$page.txt" || { echo "$page renders no NAME section"; exit 1; }
done
echo "man pages render: remus(1) $(wc -l < "$TMP/remus.1.txt") lines, remus-drill(1), remus.conf(5)"
