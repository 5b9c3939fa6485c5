#!/usr/bin/env python3
"""The external commands that the project's scripts run.

    commands.py            one command a line (sorted)
    commands.py --files    the scripts it reads

Every script is parsed by bash (wrapped in a function that is defined,
never run, and printed back by `declare -f`); here-document bodies and
double-quoted strings (messages) are dropped, except for the command
substitutions inside them; single-quoted text is kept (it is what
`sh -c '...'` and `ip netns exec ... sh -c` run).  A word is a command when
this host has an executable of that name in the system directories and it
is not a bash builtin or keyword: an over-approximation that
scripts/fresh-root-check.sh checks against a fresh Debian root.
"""
import glob
import os
import re
import subprocess
import sys

from shparse import canonical

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SCRIPTS = ['tests/integration/*.sh', 'tests/lib/*.sh', 'tests/soak/*.sh',
           'tests/support/*.sh',
           'tests/once/*.sh', 'tests/run-tests.sh', 'ocf/remus',
           'lab/xen/*.sh', 'lab/kvm/*.sh', 'lab/lib/*.sh', 'scripts/*.sh', '.ci/run']
SYSTEM_PATH = ['/usr/sbin', '/usr/bin', '/sbin', '/bin']
# Words of these scripts that name an executable on some hosts but are not
# run as commands here (a path part, an awk word, an option value).
NOT_COMMANDS = {
    'dir': 'a variable name',
    'file': 'a word in option values and variable names',
    'fmt': 'a variable name (stream format)',
    'link': 'ip link',
    'opt': 'a path part (/opt)',
    'route': 'ip route',
    'script': 'a variable name',
    'size': 'a word in tmpfs options',
    'w': 'a word in awk and sed programs',
    'git': 'the clone itself was made with git; run-tests.sh falls back to find',
    'shutdown': 'an option value (lab/xen)',
}


def drop_messages(line):
    out, i, n = [], 0, len(line)
    while i < n:
        c = line[i]
        if c == '\\':
            out.append(line[i:i + 2])
            i += 2
            continue
        if c == '"':
            j = i + 1
            while j < n and line[j] != '"':
                if line[j] == '\\':
                    j += 1
                j += 1
            out.append(' ' + ' '.join(re.findall(r'\$\(([^)]*)\)',
                                                 line[i + 1:j])) + ' ')
            i = j + 1
            continue
        out.append(c)
        i += 1
    return ''.join(out)


def files():
    out = []
    for pat in SCRIPTS:
        out.extend(sorted(glob.glob(os.path.join(ROOT, pat))))
    return out


def commands():
    words = set()
    for path in files():
        heredoc = None
        for ln in canonical(path):
            if heredoc:
                if ln == heredoc:
                    heredoc = None
                continue
            m = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", ln)
            if m and '<<<' not in ln:
                heredoc = m.group(1)
            code = drop_messages(ln)
            words.update(re.findall(r'(?<![\w./$=-])([A-Za-z][\w.+-]*)', code))
    shell = subprocess.run(['bash', '-c', 'compgen -b; compgen -k'],
                           capture_output=True, text=True).stdout.split()
    found = []
    for w in sorted(words):
        if w in shell or w in NOT_COMMANDS:
            continue
        if any(os.access(os.path.join(d, w), os.X_OK) and
               os.path.isfile(os.path.join(d, w)) for d in SYSTEM_PATH):
            found.append(w)
    return found


if __name__ == '__main__':
    if sys.argv[1:] == ['--files']:
        print('\n'.join(os.path.relpath(f, ROOT) for f in files()))
    else:
        print('\n'.join(commands()))
