#!/usr/bin/env python3
"""Reject `A && B` lists whose status is thrown away, in shell scripts.

Under `set -e` a failing A in the list `A && B` does not stop the script,
so `[ "$n" -ge 5 ] && [ "$same" = "$n" ]` is an assertion that cannot
fail, and `kill -0 $p && { echo "still there"; return 1; }` followed by
more commands a check that is easy to misread.  Flagged: an && list that
is a statement followed by another in the same block (its status is
thrown away), and an && list at a script's top level other than its last
statement.  Allowed: conditions (if/elif/while/until), lists that handle
the failure (`A && B || C`), and the last statement of a block, whose
status is the block's (a function's return value).  Write `A || fail ...`
or `if A; then B; fi` instead.

The script is parsed by bash itself (it is wrapped in a function that is
defined, never run, and printed back by `declare -f`), so quoting,
here-documents, continuations and comments are bash's, not guessed.

usage: set_e_lists.py FILE...   (exit 1, and one line per finding)
"""
import re
import sys

from shparse import canonical


def strip_words(line):
    """The line without quoted strings and command substitutions."""
    out, i, n = [], 0, len(line)
    while i < n:
        c = line[i]
        if c == '\\':
            i += 2
            continue
        if c == "'":
            j = line.find("'", i + 1)
            i = n if j < 0 else j + 1
            out.append("''")
            continue
        if c == '"' or line.startswith('$(', i):
            # skip to the matching close, counting nested $( ) and quotes
            depth, j = 0, i
            close = '"' if c == '"' else ')'
            j = i + 1 if c == '"' else i + 2
            while j < n:
                if line[j] == '\\':
                    j += 2
                    continue
                if line.startswith('$(', j):
                    depth += 1
                    j += 2
                    continue
                if line[j] == ')' and depth:
                    depth -= 1
                elif line[j] == close and not depth:
                    break
                j += 1
            i = j + 1
            out.append('""')
            continue
        out.append(c)
        i += 1
    return ''.join(out)


def closing(body, text, k):
    """The rest of a list whose line k opens a group: the line, at line k's
    indentation, that closes it (and those after it while they reopen)."""
    indent = len(body[k]) - len(body[k].lstrip())
    rest = []
    for ln, blanked in zip(body[k + 1:], text[k + 1:]):
        if (len(ln) - len(ln.lstrip()) == indent and
                ln.strip()[:1] in ('}', ')')):
            code = strip_words(blanked).strip()
            rest.append(code)
            if not (code.endswith('{') or code.endswith('(')):
                break
    return ' '.join(rest)


def blank(body):
    """The body's lines with here-document bodies emptied and quoted text
    (which may span lines: an awk or sh -c program) blanked; the line count
    and each line's indentation are kept."""
    out, heredoc, quote = [], None, None
    for raw in body:
        if heredoc:
            out.append('')
            if raw == heredoc:
                heredoc = None
            continue
        cur, i, n = [], 0, len(raw)
        while i < n:
            c = raw[i]
            if quote:
                if c == '\\' and quote == '"':
                    i += 2
                    continue
                if c == quote:
                    quote = None
                    cur.append('""')
                i += 1
                continue
            if c == '\\':
                cur.append(raw[i:i + 2])
                i += 2
                continue
            if c in '\'"':
                quote = c
                i += 1
                continue
            cur.append(c)
            i += 1
        line = ''.join(cur)
        m = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", raw)
        if m and '<<<' not in raw and not quote:
            heredoc = m.group(1)
        out.append(line)
    return out


def check(path):
    lines = canonical(path)
    body = lines[2:-1]           # inside "NAME () \n{ \n ... \n}"
    text = blank(body)
    findings = []
    # the last statement at the top level (indent 4) is the exit status
    top = [k for k, ln in enumerate(body)
           if ln.startswith('    ') and not ln.startswith('     ')
           and ln.strip() not in ('', '}', 'fi', 'done', 'esac', ';;')]
    last_top = top[-1] if top else -1
    for k, raw in enumerate(body):
        code = re.sub(r'\[\[.*?\]\]', '[[ ]]', strip_words(text[k])).strip()
        if '&&' not in code:
            continue
        if re.match(r'(if|elif|while|until|!)\s', code):
            continue
        if code.endswith('then') or code.endswith('do'):
            continue                       # a multi-line condition's end
        if code.startswith('(') and code.rfind(')') > code.rfind('&&'):
            continue    # a subshell that ends with the list exits with its
                        # status, which set -e then checks
        end = code
        if code.endswith('{') or code.endswith('('):
            # `A && {` opens a group: the list goes on after its close
            end = closing(body, text, k)
        tail = code[code.rfind('&&'):] + ' ' + end
        if '||' in tail:
            continue
        final = not end.endswith(';')
        at_top = raw.startswith('    ') and not raw.startswith('     ')
        if final and not (at_top and k != last_top):
            continue
        findings.append(code.rstrip(';'))
    return findings


def main(paths):
    bad = 0
    for path in paths:
        for st in check(path):
            print(f'{path}: an && list whose status is thrown away (under '
                  f'set -e a failing first part does not fail the script; '
                  f'write `A || fail` or `if A; then B; fi`): {st}')
            bad += 1
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
