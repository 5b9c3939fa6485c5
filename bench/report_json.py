#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The tables of a bench report (markdown) as one JSON document.

    report_json.py REPORT.md > REPORT.json

`make bench` runs it on build/bench/report.md (written by kvm_bench and
qemu_bench.py) and writes build/bench/report.json beside it;
bench/compare.py compares two such files.  The JSON:

    {"meta": {"report": "report.md", "date": "2026-12-02T11:00:00Z",
              "git_describe": "0.1.0-g1234abc", "cpus": 2},
     "tables": [{"id": ..., "title": ..., "section": ...,
                 "columns": [...],
                 "rows": [{"key": first cell, "cells": {column: cell}}]}],
     "not_measured": [{"section": ..., "what": ..., "why": ...}]}

A table's title is the paragraph just before it when that ends with ':'
(the benches' captions do), else the heading it is under.  Its id is the
title with every number written N (captions carry measured figures, such
as the unprotected rate), "#2", "#3" added to a repeated one: compare.py
matches tables by id and rows by key, so both stay the same from run to
run.  A column named twice gets " #2" too.

A cell is a JSON number when it is one ("1,003", "0.530", "+0.12"); a
number with units or a note keeps its text: {"value": 0.53, "text":
"0.53 ms"} ("4.0x", "301 (69%)"); numbers separated by " / " are
{"values": [139, 181], "text": "139 ms / 181 ms"}; anything else ("-",
"8.7-19.7 M pages/s") stays a string.  A row "| what | NOT MEASURED: why |"
is {"key": what, "not_measured": why, "cells": {}}; a line "NOT MEASURED:
why" outside a table, or a NOT MEASURED row outside one, goes to
"not_measured".

Exit 0 with the JSON on stdout; 2 (and a message naming the file) when it
cannot be read or holds neither a table nor a NOT MEASURED line.
"""
import datetime
import json
import os
import re
import subprocess
import sys

NUM = r'[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][+-]?\d+)?'
# A unit after a number: words, %, x, /; no digit, no parenthesis.
UNIT = r'[A-Za-z%/µ][A-Za-z%/µ .]*'
PLAIN = re.compile(r'^(%s)$' % NUM)
WITH_UNIT = re.compile(r'^(%s)\s*(?:%s)$' % (NUM, UNIT))
WITH_NOTE = re.compile(r'^(%s)\s*(?:%s)?\s*\(.*\)$' % (NUM, UNIT))
HEADING = re.compile(r'^#{1,6}\s+(.*?)\s*#*\s*$')
SEPARATOR = re.compile(r'^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$')
NOT_MEASURED = 'NOT MEASURED:'


def number(text):
    """The number @text spells (thousands' commas allowed): an int when it
    has no fraction or exponent, else a float."""
    t = text.replace(',', '')
    if re.fullmatch(r'[+-]?\d+', t):
        return int(t)
    return float(t)


def cell_value(text):
    """A cell's JSON value: a number, {"value", "text"}, {"values",
    "text"} or the text itself (see the module's docstring)."""
    m = PLAIN.match(text)
    if m:
        return number(m.group(1))
    parts = text.split(' / ')
    if len(parts) > 1:
        vals = [WITH_UNIT.match(p) or PLAIN.match(p) for p in parts]
        if all(vals):
            return {"values": [number(v.group(1)) for v in vals],
                    "text": text}
    m = WITH_UNIT.match(text) or WITH_NOTE.match(text)
    if m:
        return {"value": number(m.group(1)), "text": text}
    return text


def split_row(line):
    """The cells of a markdown table line, stripped ("| a | b |" -> [a, b];
    an escaped "\\|" stays in its cell)."""
    s = line.strip()
    if s.startswith('|'):
        s = s[1:]
    if s.endswith('|') and not s.endswith('\\|'):
        s = s[:-1]
    return [c.strip().replace('\\|', '|') for c in re.split(r'(?<!\\)\|', s)]


def mask_numbers(text):
    """@text with every number written N: a title's id."""
    return re.sub(r'\d+(?:[.,]\d+)*', 'N', text)


def unique(names):
    """@names with " #2", " #3" added to the second, third... of a name."""
    seen = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else '%s #%d' % (n, seen[n]))
    return out


def not_measured_row(cells):
    """(what, why) when the row's cells say NOT MEASURED, else None."""
    for i, c in enumerate(cells):
        if c.startswith(NOT_MEASURED):
            what = ' | '.join(cells[:i]) if i else ''
            return what, c[len(NOT_MEASURED):].strip()
    return None


def parse(text):
    """The tables and the NOT MEASURED lines of a report:
    (tables, not_measured), as the JSON holds them (ids not yet made
    unique)."""
    lines = text.split('\n')
    tables, missing = [], []
    section, para, last = '', [], []   # the paragraph going, the one before
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        h = HEADING.match(line)
        if h:
            section, para, last = h.group(1), [], []
            i += 1
            continue
        if line.lstrip().startswith('|'):
            block = []
            while i < len(lines) and lines[i].lstrip().startswith('|'):
                block.append(lines[i].rstrip())
                i += 1
            caption = ' '.join(para or last).strip()
            para, last = [], []
            if len(block) >= 2 and SEPARATOR.match(block[1]):
                title = caption if caption.endswith(':') else section
                columns = unique(split_row(block[0]))
                rows = []
                for b in block[2:]:
                    cells = split_row(b)
                    nm = not_measured_row(cells)
                    if nm:
                        rows.append({"key": nm[0], "not_measured": nm[1],
                                     "cells": {}})
                        continue
                    row = {"key": cells[0] if cells else '', "cells": {}}
                    for col, c in zip(columns[1:], cells[1:]):
                        row["cells"][col] = cell_value(c)
                    rows.append(row)
                tables.append({"id": mask_numbers(title or 'table'),
                               "title": title, "section": section,
                               "columns": columns, "rows": rows})
            else:
                # Not a table (no separator line): only its NOT MEASURED
                # rows are kept.
                for b in block:
                    nm = not_measured_row(split_row(b))
                    if nm:
                        missing.append({"section": section, "what": nm[0],
                                        "why": nm[1]})
            continue
        s = line.strip()
        if s.startswith(NOT_MEASURED):
            missing.append({"section": section, "what": '',
                            "why": s[len(NOT_MEASURED):].strip()})
            para, last = [], []
        elif s:
            para.append(s)
        elif para:
            para, last = [], para
        i += 1
    return tables, missing


def git_describe():
    """`git describe` of the tree this script is in (as the Makefile
    computes remus's version), or None outside git."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for args in (['describe', '--tags', '--dirty'],
                 ['describe', '--always', '--dirty']):
        try:
            p = subprocess.run(['git', '-C', root] + args,
                               capture_output=True, text=True)
        except OSError:
            return None
        if p.returncode == 0 and p.stdout.strip():
            return p.stdout.strip()
    return None


def main(argv):
    """Exit status: 0 with the JSON written to stdout, 2 on bad input."""
    rc, text = 0, None
    path = argv[1] if len(argv) == 2 else None
    if path is None or path.startswith('-'):
        print("usage: report_json.py REPORT.md > REPORT.json",
              file=sys.stderr)
        rc = 2
    else:
        try:
            with open(path, encoding='utf-8') as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            print("report_json.py: %s: cannot read: %s" % (path, e),
                  file=sys.stderr)
            rc = 2
    if text is not None:
        tables, missing = parse(text)
        if not tables and not missing:
            print("report_json.py: %s: no table and no NOT MEASURED line "
                  "(not a bench report?)" % path, file=sys.stderr)
            rc = 2
        else:
            for t, i in zip(tables, unique([t["id"] for t in tables])):
                t["id"] = i
            date = datetime.datetime.now(datetime.timezone.utc)
            doc = {"meta": {"report": os.path.basename(path),
                            "date": date.strftime('%Y-%m-%dT%H:%M:%SZ'),
                            "git_describe": git_describe(),
                            "cpus": os.cpu_count()},
                   "tables": tables, "not_measured": missing}
            json.dump(doc, sys.stdout, indent=1, ensure_ascii=False)
            sys.stdout.write('\n')
    return rc


if __name__ == '__main__':
    sys.exit(main(sys.argv))
