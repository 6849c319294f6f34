#!/bin/sh
# docs/config.md documents every pgsense.ini key: t/docs/config_keys prints
# the config key table (src/config_keys.c); each key must have a row
# "| `key` | ..." under its section's heading ("### `[section]`" or
# "### `[[section]]`", "### Top level" for keys before any section), and the
# row must show the table's default. Also checks that the man page
# pgsense.ini(5) names every section.
set -u
srcdir=${srcdir:-.}
doc="$srcdir/docs/config.md"
man="$srcdir/docs/man/pgsense.ini.5"
keys=${CONFIG_KEYS:-./t/docs/config_keys}
[ -f "$doc" ] || { echo "FAIL: $doc not found"; exit 1; }
tmp=$(mktemp "${TMPDIR:-/tmp}/pgsense-keys.XXXXXX") || exit 99
trap 'rm -f "$tmp"' EXIT INT TERM
"$keys" >"$tmp" || { echo "FAIL: $keys did not run"; exit 1; }
[ -s "$tmp" ] || { echo "FAIL: $keys printed no key"; exit 1; }

fail=0
n=0
while IFS= read -r line; do
    n=$((n + 1))
    # cut, not read: IFS would merge the empty top-level section into the next field.
    section=$(printf '%s\n' "$line" | cut -f1)
    key=$(printf '%s\n' "$line" | cut -f2)
    def=$(printf '%s\n' "$line" | cut -f4)
    # The block of docs/config.md under this section's heading.
    block=$(awk -v sec="$section" '
        /^### / {
            if (sec == "") on = ($0 ~ /^### Top level/)
            else on = (index($0, "`[" sec "]`") > 0 || index($0, "`[[" sec "]]`") > 0)
            next
        }
        /^## / { on = 0 }
        on { print }' "$doc")
    row=$(printf '%s\n' "$block" | grep -F "| \`$key\` |" | head -1)
    label="${section:-top level}.$key"
    if [ -z "$row" ]; then
        echo "FAIL: docs/config.md: no row for $label (section heading, then | \`$key\` | ...)"
        fail=1
    elif [ -n "$def" ] && ! printf '%s\n' "$row" | grep -qF -- "$def"; then
        echo "FAIL: docs/config.md: $label: the row does not show the default \"$def\""
        fail=1
    fi
done <"$tmp"

if [ -f "$man" ]; then
    for section in $(cut -f1 "$tmp" | sort -u); do
        grep -qF "$section" "$man" || { echo "FAIL: $man: section [$section] not mentioned"; fail=1; }
    done
fi
[ $fail -eq 0 ] && echo "ok: docs/config.md documents all $n keys"
exit $fail
