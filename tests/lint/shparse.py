"""Shell scripts as bash itself parses them (for the lints in tests/lint).

A script is wrapped in a function that is defined, never run, and printed
back by `declare -f`: one statement a line, comments gone, quoting and
here-documents as bash reads them.
"""
import subprocess

WRAP = '__tests_lint_script'


def canonical(path):
    """The lines of `declare -f` of the script wrapped in a function
    (its first two lines are the function's header, the last its close).
    Exits naming the script when bash cannot parse it."""
    prog = ('eval "%s() {\n$(cat "$1")\n}" || exit 3; declare -f %s'
            % (WRAP, WRAP))
    r = subprocess.run(['bash', '-c', prog, 'lint', path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f'{path}: bash cannot parse it: {r.stderr.strip()}')
    return r.stdout.split('\n')
