#!/bin/sh
# CLI contract test for `pgsense rules`: `rules test --format json` on a
# fixture file must equal expected.jsonl byte for byte; exit codes 0/1/2.
set -u
srcdir=${srcdir:-.}
dir="$srcdir/t/rules"
[ -d "$dir" ] || dir=$(dirname "$0")
pgsense=${PGSENSE:-./pgsense}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgsense-rules-test.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0

check() { # name, expected exit code, actual exit code
    if [ "$2" != "$3" ]; then
        echo "FAIL: $1: exit $3, wanted $2"
        fail=1
    else
        echo "ok: $1"
    fi
}

"$pgsense" rules test -r "$dir/rules.yaml" --file "$dir/values.txt" --format json >"$tmp/out.jsonl" 2>"$tmp/err"
check "rules test --format json" 0 $?
if ! cmp -s "$tmp/out.jsonl" "$dir/expected.jsonl"; then
    echo "FAIL: output differs from expected.jsonl:"
    diff "$dir/expected.jsonl" "$tmp/out.jsonl"
    fail=1
fi

"$pgsense" rules test -r "$dir/rules.yaml" --input 'key AKIAZ7VQ3K2LMNOPQRST' --format json >"$tmp/one" 2>&1
check "rules test --input" 0 $?
printf '%s\n' '{"line": 1, "findings": [{"rule_id": "aws", "category": "SECRET", "severity": "HIGH", "masked_sample": "AK****************ST", "start": 4, "end": 24}]}' >"$tmp/one.want"
cmp -s "$tmp/one" "$tmp/one.want" || { echo "FAIL: --input output:"; cat "$tmp/one"; fail=1; }

"$pgsense" rules test -r "$dir/bad.yaml" --input x >"$tmp/out" 2>"$tmp/err"
check "bad rules exit 1" 1 $?
grep -qx "$dir/bad.yaml:4: rule 'a': pattern: invalid regex at offset 4: missing closing parenthesis" "$tmp/err" &&
    grep -qx "$dir/bad.yaml:5: duplicate rule id 'a' (first at line 2)" "$tmp/err" ||
    { echo "FAIL: bad rules messages:"; cat "$tmp/err"; fail=1; }

"$pgsense" rules test -r "$dir/rules.yaml" >/dev/null 2>&1
check "no input is a usage error" 2 $?
"$pgsense" rules test -r "$dir/rules.yaml" --input x --format xml >/dev/null 2>&1
check "bad format is a usage error" 2 $?
"$pgsense" rules frobnicate >/dev/null 2>&1
check "unknown subcommand" 2 $?
"$pgsense" rules bench -r "$dir/rules.yaml" --generate 0 >/dev/null 2>&1
check "bench --generate 0" 2 $?

"$pgsense" rules list -r "$dir/rules.yaml" >"$tmp/list" 2>&1
check "rules list" 0 $?
[ "$(wc -l <"$tmp/list")" -eq 5 ] && grep -q '^card  *builtin  *CRITICAL  *PCI_DSS  *Cards$' "$tmp/list" ||
    { echo "FAIL: rules list:"; cat "$tmp/list"; fail=1; }

"$pgsense" rules bench -r "$dir/rules.yaml" --generate 200 --iterations 2 --format json >"$tmp/bench" 2>&1
check "rules bench" 0 $?
grep -q '"values_per_s": ' "$tmp/bench" && grep -q '"rule_id": "words"' "$tmp/bench" ||
    { echo "FAIL: bench json:"; cat "$tmp/bench"; fail=1; }

exit $fail
