#!/usr/bin/env bash
# Checks include/ghm.h for what a C user should never meet: an identifier without the
# library's prefix (every macro, type and function is GHM_/ghm_), and Rust-only doc syntax
# (intra-doc links such as [`Stats::merge`] or [text](Stats::merge), paths with `::`).
# Usage: scripts/check-header.sh [header]   (default include/ghm.h; exit 1 on any finding)
set -euo pipefail
cd "$(dirname "$0")/.."
header=${1:-include/ghm.h}
fail=0
report() { echo "check-header: $header: $1"; fail=1; }

# Macros, struct/typedef names and function names, outside comments.
code=$(sed -e 's://.*$::' "$header" | perl -0pe 's:/\*.*?\*/::gs')
while read -r name; do
  [[ -z "$name" || "$name" == GHM_* ]] || report "macro without the GHM_ prefix: $name"
done < <(grep -oE '^#define +[A-Za-z_][A-Za-z0-9_]*' <<<"$code" | awk '{print $2}')
while read -r name; do
  [[ -z "$name" || "$name" == ghm_* ]] || report "type without the ghm_ prefix: $name"
done < <(grep -oE '(typedef (struct|enum|union) +[A-Za-z_][A-Za-z0-9_]*|\} *[A-Za-z_][A-Za-z0-9_]* *;|typedef [a-z0-9_ ]+ [A-Za-z_][A-Za-z0-9_]*;)' <<<"$code" \
  | sed -E 's/typedef (struct|enum|union) +//; s/^\} *//; s/ *;$//; s/^typedef .* //')
while read -r name; do
  [[ -z "$name" || "$name" == ghm_* ]] || report "function without the ghm_ prefix: $name"
done < <(grep -oE '^[A-Za-z_][A-Za-z0-9_ \*]* \**([A-Za-z_][A-Za-z0-9_]*)\($' <<<"$code" | sed -E 's/\($//; s/.*[ *]//')

# Rust doc syntax in comments.
while IFS= read -r line; do
  report "Rust doc syntax: $line"
done < <(grep -nE '\[`[^]]*`\]|\]\([A-Za-z_:]+\)|[A-Za-z_]::[A-Za-z_]|\bSelf\b|&\[|Option<|Result<' "$header" || true)

[ "$fail" = 0 ] && echo "check-header: $header: every identifier prefixed, no Rust doc syntax"
exit "$fail"
