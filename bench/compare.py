#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Two bench reports side by side: what a change did to each figure.

    compare.py OLD.json NEW.json

OLD and NEW are report.json files (bench/report_json.py, written by `make
bench` beside build/bench/report.md).  For each table in both (matched by
its id) and each row in both (matched by its first cell), every column
where either side is a number: old -> new and new/old ("1.00": the same;
when old is 0 and new is not, the change, "+0.5"; "-" when one side is not
a number or the units differ).  A cell of several numbers ("139 ms / 181
ms") gets one ratio per number.  Then the rows and tables only in one of
the two (removed: only in OLD; added: only in NEW) and the rows or lines
either could not measure.  Markdown on stdout.

Exit 0 when both files could be compared (whatever changed); 2 with a
message naming the file when one cannot be read, is not JSON, or is not
shaped like report_json.py's output.
"""
import json
import re
import sys

from report_json import unique  # the same naming of repeated rows

NUM = r'[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][+-]?\d+)?'
TITLE_WIDTH = 110


class BadReport(Exception):
    """A file that is not a report: str() names what is wrong in it."""


def is_number(v):
    """Is @v a JSON number (not a bool)?"""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_shape(doc):
    """Raise BadReport naming the first place where @doc is not shaped
    like report_json.py's output; return None when it is."""
    if not isinstance(doc, dict):
        raise BadReport("the top level is not an object")
    if not isinstance(doc.get("tables"), list):
        raise BadReport("no \"tables\" list")
    for ti, t in enumerate(doc["tables"]):
        where = "tables[%d]" % ti
        if not isinstance(t, dict):
            raise BadReport("%s is not an object" % where)
        for k in ("id", "title"):
            if not isinstance(t.get(k), str):
                raise BadReport("%s has no \"%s\" string" % (where, k))
        if not isinstance(t.get("rows"), list):
            raise BadReport("%s has no \"rows\" list" % where)
        for ri, r in enumerate(t["rows"]):
            rw = "%s.rows[%d]" % (where, ri)
            if not isinstance(r, dict):
                raise BadReport("%s is not an object" % rw)
            if not isinstance(r.get("key"), str):
                raise BadReport("%s has no \"key\" string" % rw)
            if not isinstance(r.get("cells"), dict):
                raise BadReport("%s has no \"cells\" object" % rw)
            for col, c in r["cells"].items():
                check_cell(c, "%s.cells[%s]" % (rw, json.dumps(col)))
    nm = doc.get("not_measured", [])
    if not isinstance(nm, list) or not all(isinstance(x, dict) for x in nm):
        raise BadReport("\"not_measured\" is not a list of objects")
    if not isinstance(doc.get("meta", {}), dict):
        raise BadReport("\"meta\" is not an object")


def check_cell(c, where):
    """Raise BadReport unless @c is a cell report_json.py writes."""
    if isinstance(c, str) or is_number(c):
        return
    if isinstance(c, dict) and isinstance(c.get("text"), str):
        if is_number(c.get("value")):
            return
        v = c.get("values")
        if isinstance(v, list) and v and all(is_number(x) for x in v):
            return
    raise BadReport("%s is neither a number, a string nor "
                    "{\"value\"/\"values\", \"text\"}" % where)


def load(path):
    """The report in @path, checked; raises BadReport (its message names
    @path) when it cannot be read or is not a report."""
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise BadReport("%s: cannot read: %s" % (path, e))
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise BadReport("%s: not JSON: %s" % (path, e))
    try:
        check_shape(doc)
    except BadReport as e:
        raise BadReport("%s: not a bench report: %s" % (path, e))
    return doc


def numbers(c):
    """The numbers of cell @c (a list, empty for text)."""
    if is_number(c):
        return [c]
    if isinstance(c, dict):
        return [c["value"]] if "value" in c else list(c["values"])
    return []


def text(c):
    """Cell @c as the report wrote it (a number as JSON spells it)."""
    if isinstance(c, dict):
        return c["text"]
    return c if isinstance(c, str) else json.dumps(c)


def units(c):
    """What @c says besides its numbers: two cells compare only when it
    is the same ("0.5 ms" and "0.7 ms" do, "997 KB" and "1.0 MB" not)."""
    return re.sub(NUM, 'N', text(c)) if isinstance(c, dict) else 'N'


def ratio(old, new):
    """new/old as the comparison prints it: "1.00" when equal, the change
    ("+0.5") when old is 0."""
    if old == new:
        return "1.00"
    if old == 0:
        return "%+g" % (new - old)
    return "%.2f" % (new / old)


def short(s, width=TITLE_WIDTH):
    """@s cut to @width characters (with "...")."""
    return s if len(s) <= width else s[:width - 3].rstrip() + '...'


def md(s):
    """@s made safe for a markdown table cell."""
    return s.replace('|', '\\|')


def describe(path, doc):
    """One line on a report: its file and what its meta says."""
    m = doc.get("meta", {})
    bits = [str(m[k]) for k in ("git_describe", "date") if m.get(k)]
    if m.get("cpus"):
        bits.append("%s CPUs" % m["cpus"])
    return "%s (%s)" % (path, ", ".join(bits)) if bits else path


def compare_table(t_old, t_new, out):
    """Append to @out the lines comparing two tables of the same id."""
    old_rows = dict(zip(unique([r["key"] for r in t_old["rows"]]),
                        t_old["rows"]))
    new_keys = unique([r["key"] for r in t_new["rows"]])
    new_rows = dict(zip(new_keys, t_new["rows"]))
    lines, missing = [], []
    for key in new_keys:
        ro, rn = old_rows.get(key), new_rows[key]
        if ro is None:
            continue
        for side, r in (("OLD", ro), ("NEW", rn)):
            if "not_measured" in r:
                missing.append("not measured in %s: %s: %s"
                               % (side, key, r["not_measured"]))
        for col, cn in rn["cells"].items():
            if col not in ro["cells"]:
                continue
            co = ro["cells"][col]
            no, nn = numbers(co), numbers(cn)
            if not no and not nn:
                continue
            if len(no) == len(nn) and units(co) == units(cn):
                r = " / ".join(ratio(a, b) for a, b in zip(no, nn))
            else:
                r = "-"
            lines.append("| %s | %s | %s | %s | %s |" % (
                md(key), md(col), md(text(co)), md(text(cn)), r))
    out.append("")
    out.append("## " + short(t_new["title"]))
    out.append("")
    if lines:
        out += ["| row | column | old | new | new/old |",
                "|---|---|---|---|---|"] + lines
    else:
        out.append("(no number in a row of both)")
    removed = [k for k in old_rows if k not in new_rows]
    added = [k for k in new_keys if k not in old_rows]
    if removed or added or missing:
        out.append("")
    if removed:
        out.append("rows removed (only in OLD): " + "; ".join(removed))
    if added:
        out.append("rows added (only in NEW): " + "; ".join(added))
    out += missing


def compare(old_path, old, new_path, new):
    """The comparison of two loaded reports, as a list of lines."""
    out = ["OLD: " + describe(old_path, old),
           "NEW: " + describe(new_path, new)]
    old_tables = {t["id"]: t for t in old["tables"]}
    new_ids = [t["id"] for t in new["tables"]]
    for t in new["tables"]:
        if t["id"] in old_tables:
            compare_table(old_tables[t["id"]], t, out)
    removed = [t for t in old["tables"] if t["id"] not in new_ids]
    added = [t for t in new["tables"] if t["id"] not in old_tables]
    tail = ["table removed (only in OLD): " + short(t["title"])
            for t in removed]
    tail += ["table added (only in NEW): " + short(t["title"])
             for t in added]
    for side, doc in (("OLD", old), ("NEW", new)):
        for m in doc.get("not_measured", []):
            what = m.get("what") or m.get("section") or ""
            tail.append("not measured in %s: %s%s" % (
                side, what + ": " if what else "", m.get("why", "")))
    if tail:
        out += [""] + tail
    return out


def main(argv):
    """Exit status: 0 when compared, 2 on a bad file or usage."""
    rc = 0
    if len(argv) != 3:
        print("usage: compare.py OLD.json NEW.json", file=sys.stderr)
        rc = 2
    else:
        try:
            old = load(argv[1])
            new = load(argv[2])
        except BadReport as e:
            print("compare.py: %s" % e, file=sys.stderr)
            rc = 2
        else:
            print("\n".join(compare(argv[1], old, argv[2], new)))
    return rc


if __name__ == '__main__':
    sys.exit(main(sys.argv))
