#!/usr/bin/env python3
"""The options `remus CMD --help` lists, per subcommand, read from a remus
binary (never retyped): the commands from `remus --help`, then for each its
--help (and --xen --help for the Xen commands).

    help_options.py REMUS            one line per command: CMD OPT OPT ...
    help_options.py REMUS --bash     a bash completion script for remus

An option is counted where the help defines it: a line that starts (after
its indentation) with "-x" or "--xx", whose option words run up to the
first gap of two spaces or the first two words in a row that are not
options ("  --memory MIB --vcpus N  the guest": --memory and --vcpus;
"--no-disk-replication protect with -F -d": only the first), and every
option of the usage lines.  --help and -h
are every command's and are left out.
"""
import re
import subprocess
import sys

OPT = re.compile(r'^--?[A-Za-z][A-Za-z0-9-]*')
USAGE_OPT = re.compile(r'(?<![\w/-])(--?[A-Za-z][A-Za-z0-9-]*)')


def help_text(remus, args):
    p = subprocess.run([remus] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit("help_options: '%s' exited %d" % (' '.join([remus] + args),
                                                   p.returncode))
    return p.stdout


def commands(remus):
    out, inside = [], False
    for line in help_text(remus, ['--help']).splitlines():
        if line.startswith('Commands:'):
            inside = True
            continue
        if inside:
            m = re.match(r'^  (\S+)\s', line)
            if not m:
                break
            if m.group(1) not in ('help', 'version'):
                out.append(m.group(1))
    if not out:
        sys.exit("help_options: no command in '%s --help'" % remus)
    return out


def options(text):
    opts = set()
    for line in text.splitlines():
        if line.startswith(('usage:', '       remus')):
            opts.update(USAGE_OPT.findall(line))
            continue
        s = line.lstrip()
        if s == line or not s.startswith('-'):
            continue
        head = re.split(r'\s{2,}', s, maxsplit=1)[0]
        prev_opt = False
        for word in head.split():
            m = OPT.match(word)
            if m:
                opts.add(m.group(0))
            elif not prev_opt:
                break       # prose after an option's value
            prev_opt = bool(m)
    opts.discard('--help')
    opts.discard('-h')
    return opts


def table(remus):
    xen = set()
    m = re.search(r'Xen \(in dom0\):(.*?)with --xen', help_text(remus, ['--help']),
                  re.S)
    if m:
        xen = set(re.findall(r'[a-z][a-z-]+', m.group(1))) - {'and'}
    rows = []
    for cmd in commands(remus):
        opts = options(help_text(remus, [cmd, '--help']))
        if cmd in xen:
            opts |= options(help_text(remus, [cmd, '--xen', '--help']))
            opts.add('--xen')
        rows.append((cmd, sorted(opts)))
    return rows


BASH = '''# bash completion for remus(1); generated from `remus CMD --help`
# by completion/help_options.py at build time: do not edit.
_remus()
{
    local cur cmd i
    cur=${COMP_WORDS[COMP_CWORD]}
    cmd=
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            -*) ;;
            *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    if [ -z "$cmd" ]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "-v -q --help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "%(commands)s help version" -- "$cur"))
        fi
        return
    fi
    if [[ $cur == -* ]]; then
        case $cmd in
%(cases)s
        esac
        return
    fi
    COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _remus remus
'''


def bash(rows):
    cases = '\n'.join('            %s) COMPREPLY=($(compgen -W "%s --help" -- "$cur")) ;;'
                      % (cmd, ' '.join(opts)) for cmd, opts in rows)
    return BASH % {'commands': ' '.join(c for c, _ in rows), 'cases': cases}


def main():
    if len(sys.argv) < 2:
        sys.exit('usage: help_options.py REMUS [--bash]')
    rows = table(sys.argv[1])
    if sys.argv[2:] == ['--bash']:
        sys.stdout.write(bash(rows))
    else:
        for cmd, opts in rows:
            print(cmd, ' '.join(opts))


if __name__ == '__main__':
    main()
