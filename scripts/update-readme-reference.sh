#!/bin/sh
# Regenerates the configuration reference in README.md (between the BEGIN/END components
# markers) from `flamegate components --markdown`. Usage: scripts/update-readme-reference.sh [BINARY]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$here/build/flamegate}
readme=$here/README.md
begin='<!-- BEGIN components (generated) -->'
end='<!-- END components (generated) -->'
tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.block"' EXIT
"$bin" components --markdown >"$tmp.block"
grep -qxF "$begin" "$readme" || { echo "$readme: no '$begin' line" >&2; exit 1; }
grep -qxF "$end" "$readme" || { echo "$readme: no '$end' line" >&2; exit 1; }
awk -v b="$begin" -v e="$end" -v blk="$tmp.block" '
  $0 == b { print; while ((getline line < blk) > 0) print line; skip = 1; next }
  $0 == e { skip = 0 }
  !skip { print }' "$readme" >"$tmp"
cat "$tmp" >"$readme"
echo "updated $readme"
