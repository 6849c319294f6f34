#!/bin/sh
# The man pages render without a groff warning (groff -man -ww -z). Skipped
# (exit 77) when groff is not installed (Debian: groff-base).
set -u
srcdir=${srcdir:-.}
command -v groff >/dev/null 2>&1 || { echo "SKIP: groff not installed"; exit 77; }
fail=0
for page in pgsense.1 pgsense.ini.5 pgsense-rules.5 pgsense-supervisor.8; do
    f="$srcdir/docs/man/$page"
    out=$(groff -man -ww -z "$f" 2>&1)
    if [ -n "$out" ] || [ ! -s "$f" ]; then
        echo "FAIL: $page:"
        printf '%s\n' "$out"
        fail=1
    else
        echo "ok: $page"
    fi
done
exit $fail
