#!/usr/bin/env bash
# The bench's machine-readable file and its comparison (#21, goal 8):
# bench/report_json.py turns a report's tables into JSON, bench/compare.py
# prints each figure's old -> new and new/old.  Fixtures: the README's
# Benchmarks section (one run's tables, copied) and a report in
# kvm_bench's and qemu_bench.py's own format with NOT MEASURED rows.
set -euo pipefail
. "$ROOT/tests/lib/wait.sh"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
FIX=$ROOT/tests/integration/fixtures
README_MD=$FIX/bench_readme.md
KVM_MD=$FIX/bench_kvm_report.md
to_json() { python3 "$ROOT/bench/report_json.py" "$@"; }
compare_py() { python3 "$ROOT/bench/compare.py" "$@"; }

# roundtrip MD JSON: every table of MD, read here with nothing but "|"
# splitting, is in JSON in the same order with the same title-less shape:
# its columns, and each row's key and cells (a number cell equal to the
# text's number, a text cell to the text), or its NOT MEASURED reason.
roundtrip() {
    python3 - "$1" "$2" <<'EOF'
import json, re, sys
md, doc = open(sys.argv[1]).read().split('\n'), json.load(open(sys.argv[2]))
blocks, cur = [], []
for line in md + ['']:
    if line.startswith('|'):
        cur.append([c.strip() for c in line.strip().strip('|').split('|')])
    else:
        if len(cur) >= 2 and set(''.join(cur[1])) <= set('-:'):
            blocks.append(cur)
        cur = []
tables = doc["tables"]
if len(blocks) != len(tables):
    sys.exit("%d tables in %s, %d in the JSON" % (len(blocks), sys.argv[1], len(tables)))
n = 0
for b, t in zip(blocks, tables):
    if b[0] != t["columns"]:
        sys.exit("columns %s != %s" % (b[0], t["columns"]))
    if len(b) - 2 != len(t["rows"]):
        sys.exit("%s: %d rows, JSON %d" % (t["title"][:60], len(b) - 2, len(t["rows"])))
    for cells, row in zip(b[2:], t["rows"]):
        if cells[-1].startswith("NOT MEASURED: "):
            ok = row.get("not_measured") == cells[-1][14:] and row["key"] == cells[0]
            n += ok
            if not ok:
                sys.exit("row %s: NOT MEASURED lost: %s" % (cells, row))
            continue
        if row["key"] != cells[0]:
            sys.exit("row key %r != %r" % (row["key"], cells[0]))
        for col, text in zip(b[0][1:], cells[1:]):
            v = row["cells"][col]
            if isinstance(v, dict):
                nums = [float(re.match(r'[+-]?[\d,]*\.?\d+', p).group().replace(',', ''))
                        for p in (text.split(' / ') if "values" in v else [text])]
                ok = v["text"] == text and nums == v.get("values", [v.get("value")])
            elif isinstance(v, str):
                ok = v == text
            else:
                ok = abs(v - float(text.replace(',', ''))) < 1e-12
            if not ok:
                sys.exit("%s / %s: %r in the report, %r in the JSON" % (cells[0], col, text, v))
            n += 1
print("round trip: %d tables, %d cells" % (len(tables), n))
EOF
}
# cell_is JSON TABLE-INDEX ROW-KEY COLUMN WANT: the cell as JSON text
cell_is() {
    python3 - "$@" <<'EOF'
import json, sys
path, ti, key, col, want = sys.argv[1:]
t = json.load(open(path))["tables"][int(ti)]
got = [r for r in t["rows"] if r["key"] == key][0]["cells"][col]
if got != json.loads(want):
    sys.exit("table %s row %r %r: %s, not %s" % (ti, key, col, json.dumps(got), want))
EOF
}
# all_ratios_one OUT: every compared figure of OUT has new/old 1.00, and
# there are some
all_ratios_one() {
    local n bad
    n=$(grep -c '^| .* |$' "$1" | tr -d ' ') || true
    bad=$(grep '^| ' "$1" | grep -v '^| row |' | grep -v '^|---' |
          grep -Ev '\| (1\.00)( / 1\.00)* \|$' || true)
    [ -z "$bad" ] || { echo "ratios other than 1.00:"; echo "$bad"; return 1; }
    [ "$n" -gt 50 ] || { echo "only $n lines compared"; return 1; }
}

scenario "README tables -> JSON and back"
to_json "$README_MD" > "$TMP/readme.json"
roundtrip "$README_MD" "$TMP/readme.json"
python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["meta"]; assert m["cpus"] >= 1 and m["date"] and m["report"] == "bench_readme.md", m' "$TMP/readme.json"
# numbers are numbers; units and notes keep their text; "a / b" keeps both
cell_is "$TMP/readme.json" 1 "1,003" "pause/floor" '4.0'
cell_is "$TMP/readme.json" 1 "1,003" "pause p50" '{"value": 1.11, "text": "1.11 ms"}'
cell_is "$TMP/readme.json" 1 "13" "pause/floor" '"(fixed cost)"'
cell_is "$TMP/readme.json" 2 "100,000" "pages" '{"value": 46091, "text": "46091 (92%)"}'
cell_is "$TMP/readme.json" 0 "full non-live save of a 256 MiB guest / restore from that stream" \
    value '{"values": [139, 181], "text": "139 ms / 181 ms"}'
# a JSON that lost a cell's value is caught by the round trip
sed 's/"value": 1.11,/"value": 1.12,/' "$TMP/readme.json" > "$TMP/bad.json"
must_fail "a cell changed in the JSON" roundtrip "$README_MD" "$TMP/bad.json"
must_fail "a cell's number changed" cell_is "$TMP/bad.json" 1 "1,003" "pause p50" '{"value": 1.11, "text": "1.11 ms"}'

scenario "kvm_bench's own format: NOT MEASURED rows and lines kept"
to_json "$KVM_MD" > "$TMP/kvm.json"
roundtrip "$KVM_MD" "$TMP/kvm.json"
python3 - "$TMP/kvm.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
rows = [(r["key"], r["not_measured"]) for t in d["tables"] for r in t["rows"] if "not_measured" in r]
want = [("100000", "no checkpoint of this size completed"),
        ("dirty ring", "the guest did not start"),
        ("100", "the drill failed: the guest did not survive")]
assert rows == want, rows
lines = [(m["what"], m["why"]) for m in d["not_measured"]]
assert lines == [("guest disk writes", "cannot create the guest's 64 MiB image"),
                 ("", "interval 100 ms, migration")], lines
ids = [t["id"] for t in d["tables"]]
assert len(set(ids)) == len(ids), ids
# the caption's measured rate is not in the id, so two runs match
assert "A memory-busy guest (flat out over N pages): throughput against the unprotected guest (N page-writes/s, same run):" in ids, ids
print("NOT MEASURED: %d rows, %d lines; %d table ids" % (len(rows), len(lines), len(ids)))
EOF
sed 's/^| dirty ring | NOT MEASURED: .*/| dirty ring | 1 | 2 | 3 | 4 |/' "$KVM_MD" > "$TMP/kvm_measured.md"
to_json "$TMP/kvm_measured.md" > "$TMP/kvm_measured.json"
must_fail "a NOT MEASURED row that was measured" roundtrip "$KVM_MD" "$TMP/kvm_measured.json"

scenario "a report compared with itself: every ratio 1.00"
compare_py "$TMP/readme.json" "$TMP/readme.json" > "$TMP/self.out"
all_ratios_one "$TMP/self.out"
echo "$(grep -c '1\.00' "$TMP/self.out") figures compared, all 1.00"
compare_py "$TMP/kvm.json" "$TMP/kvm.json" > "$TMP/kself.out"
all_ratios_one "$TMP/kself.out"
# the same rows not measured on both sides are said so, nothing added
grep -qx 'not measured in NEW: dirty ring: the guest did not start' "$TMP/kself.out"
if grep -E '^(rows|table) (added|removed)' "$TMP/kself.out"; then echo "rows added or removed in a report compared with itself"; exit 1; fi

scenario "a changed cell shows its ratio; rows added and removed"
sed -e 's/^| 1,003 | 1.11 ms |/| 1,003 | 2.22 ms |/' \
    -e 's/^| 96,996 |/| 97,000 |/' \
    -e 's/^| 25 ms | 0.77 | 1.27 ms | 0.0000 |/| 25 ms | 0.77 | 1.27 ms | 0.0100 |/' \
    "$README_MD" > "$TMP/changed.md"
to_json "$TMP/changed.md" > "$TMP/changed.json"
compare_py "$TMP/readme.json" "$TMP/changed.json" > "$TMP/changed.out"
grep -Ev '\| 1\.00( / 1\.00)* \|$|^\| row |^\|---|^$' "$TMP/changed.out" || true
grep -qxF '| 1,003 | pause p50 | 1.11 ms | 2.22 ms | 2.00 |' "$TMP/changed.out"
grep -qxF '| 25 ms | QEMU COLO: guest speed vs unprotected | 0.0 | 0.01 | +0.01 |' "$TMP/changed.out"
grep -qxF 'rows removed (only in OLD): 96,996' "$TMP/changed.out"
grep -qxF 'rows added (only in NEW): 97,000' "$TMP/changed.out"
# exactly the two changed figures differ from 1.00
n=$(grep '^| ' "$TMP/changed.out" | grep -v '^| row \|^|---' | grep -Ecv '\| 1\.00( / 1\.00)* \|$') || true
[ "$n" = 2 ] || { echo "$n figures changed, not 2"; exit 1; }
must_fail "a changed report compared: not every ratio 1.00" all_ratios_one "$TMP/changed.out"
must_fail "the 2.00 ratio in a report compared with itself" \
    grep -qxF '| 1,003 | pause p50 | 1.11 ms | 2.22 ms | 2.00 |' "$TMP/self.out"
# kvm_bench's report: a row measured in NEW that was not in OLD
compare_py "$TMP/kvm.json" "$TMP/kvm_measured.json" > "$TMP/kvm_measured.out"
grep -qxF 'not measured in OLD: dirty ring: the guest did not start' "$TMP/kvm_measured.out"
if grep -xF 'not measured in NEW: dirty ring: the guest did not start' "$TMP/kvm_measured.out"; then
    echo "the measured row is said not measured"; exit 1
fi
# units that differ give no ratio ("997 KB" -> "1.0 MB")
sed 's/^| 25 ms | 0.84 | 1.20 | 997 KB |/| 25 ms | 0.84 | 1.20 | 1.0 MB |/' "$README_MD" > "$TMP/units.md"
to_json "$TMP/units.md" > "$TMP/units.json"
compare_py "$TMP/readme.json" "$TMP/units.json" > "$TMP/units.out"
grep -qxF '| 25 ms | disk bytes/epoch | 997 KB | 1.0 MB | - |' "$TMP/units.out"

scenario "a figure in a caption, a column named twice"
# The unprotected rate in a caption differs from run to run: the table is
# still the same table (its id has the numbers written N).
sed 's/unprotected guest (3456789 page-writes\/s, same run)/unprotected guest (3399999 page-writes\/s, same run)/' \
    "$KVM_MD" > "$TMP/caption.md"
must_fail "the caption changed in the copy" cmp -s "$KVM_MD" "$TMP/caption.md"
to_json "$TMP/caption.md" > "$TMP/caption.json"
compare_py "$TMP/kvm.json" "$TMP/caption.json" > "$TMP/caption.out"
if grep -E '^table (added|removed)' "$TMP/caption.out"; then
    echo "a table no longer matched when a figure of its caption changed"; exit 1
fi
all_ratios_one "$TMP/caption.out"
printf 'Two:\n\n| k | a | a | b |\n|---|---|---|---|\n| r | 1 | 2 | 3 |\n| r | 4 | 5 | 6 |\n' > "$TMP/dup.md"
to_json "$TMP/dup.md" > "$TMP/dup.json"
python3 - "$TMP/dup.json" <<'EOF2'
import json, sys
t = json.load(open(sys.argv[1]))["tables"][0]
assert t["columns"] == ["k", "a", "a #2", "b"], t["columns"]
assert [r["cells"] for r in t["rows"]] == [{"a": 1, "a #2": 2, "b": 3}, {"a": 4, "a #2": 5, "b": 6}], t["rows"]
EOF2
sed 's/^| r | 4 | 5 | 6 |/| r | 4 | 10 | 6 |/' "$TMP/dup.md" > "$TMP/dup2.md"
to_json "$TMP/dup2.md" > "$TMP/dup2.json"
compare_py "$TMP/dup.json" "$TMP/dup2.json" > "$TMP/dup.out"
grep -qxF '| r #2 | a #2 | 5 | 10 | 2.00 |' "$TMP/dup.out"
grep -qxF '| r | a #2 | 2 | 2 | 1.00 |' "$TMP/dup.out"

scenario "bad input: exit 2, the file named"
# bad_input WHAT FILE EXPECT: compare.py on FILE (as OLD, then as NEW)
# exits 2 with FILE and EXPECT in its one-line message
bad_input() {
    local f=$2 want=$3 rc side
    for side in old new; do
        rc=0
        if [ $side = old ]; then compare_py "$f" "$TMP/readme.json" > "$TMP/o" 2> "$TMP/e" || rc=$?
        else compare_py "$TMP/readme.json" "$f" > "$TMP/o" 2> "$TMP/e" || rc=$?; fi
        [ "$rc" = 2 ] || { echo "$1 as $side: exit $rc, not 2"; cat "$TMP/e"; return 1; }
        grep -qF "compare.py: $f: " "$TMP/e" || { echo "$1 as $side: the file is not named"; cat "$TMP/e"; return 1; }
        grep -qF "$want" "$TMP/e" || { echo "$1 as $side: no '$want'"; cat "$TMP/e"; return 1; }
        [ ! -s "$TMP/o" ] || { echo "$1 as $side: printed a comparison"; return 1; }
    done
    echo "$1: $(cat "$TMP/e")"
}
bad_input "a markdown report" "$README_MD" "not JSON"
printf '{"tables": [' > "$TMP/cut.json"
bad_input "a cut JSON file" "$TMP/cut.json" "not JSON"
echo '[1, 2]' > "$TMP/list.json"
bad_input "a list" "$TMP/list.json" "the top level is not an object"
echo '{"tables": {}}' > "$TMP/notables.json"
bad_input "tables not a list" "$TMP/notables.json" 'no "tables" list'
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); del d["tables"][2]["rows"][1]["key"]; json.dump(d, sys.stdout)' \
    "$TMP/readme.json" > "$TMP/nokey.json"
bad_input "a row without a key" "$TMP/nokey.json" 'tables[2].rows[1] has no "key" string'
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["tables"][1]["rows"][0]["cells"]["pause p50"] = {"text": "x"}; json.dump(d, sys.stdout)' \
    "$TMP/readme.json" > "$TMP/badcell.json"
bad_input "a cell without its number" "$TMP/badcell.json" 'tables[1].rows[0].cells["pause p50"]'
bad_input "a missing file" "$TMP/nonesuch.json" "cannot read"
must_fail "a good report taken for a bad one" bad_input "the README's JSON" "$TMP/readme.json" "not JSON"
# exits_2 WANT CMD [ARG...]: CMD exits 2 with WANT in its message
exits_2() {
    local want=$1 rc=0
    shift
    "$@" > "$TMP/o" 2> "$TMP/e" || rc=$?
    [ "$rc" = 2 ] || { echo "$*: exit $rc, not 2"; return 1; }
    grep -qF -- "$want" "$TMP/e" || { echo "$*: no '$want' in:"; cat "$TMP/e"; return 1; }
    cat "$TMP/e"
}
exits_2 "usage: compare.py OLD.json NEW.json" compare_py "$TMP/readme.json"
# report_json.py: a file that is no report, and one that is missing
exits_2 "report_json.py: $ROOT/VERSION: no table" to_json "$ROOT/VERSION"
exits_2 "report_json.py: $TMP/nonesuch.md: cannot read" to_json "$TMP/nonesuch.md"
must_fail "report_json.py on a report, taken for a bad file" exits_2 "report_json.py:" to_json "$README_MD"
echo "bench_compare: ok"
