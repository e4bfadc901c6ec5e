#!/usr/bin/env bash
# Proves the C library needs nothing from a C runtime: builds the crate without std as a
# static library, links the whole archive into a shared object with -nostdlib, and fails if
# any undefined symbol is outside the few that every compiler may emit calls to, or if any
# vector intrinsic (`core::core_arch`) was left out of line: such a function is compiled
# without the ISA's target features, and each vector operation in a kernel that calls it
# becomes a call (a closure over vectors in a kernel did this once, at 4-6x the time).
#
# usage: scripts/nostd-symbols.sh [rust-target ...]   (default: the host target and x86_64-unknown-none)
set -euo pipefail
cd "$(dirname "$0")/.."
allowed='^(memcpy|memmove|memset|memcmp|bcmp)$'
host=$(rustc -vV | sed -n 's/^host: //p')
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("$host" x86_64-unknown-none)
status=0
for target in "${targets[@]}"; do
  cargo rustc --quiet --release --no-default-features --features panic-handler --lib --crate-type staticlib \
    --target "$target" --target-dir target/nostd
  lib="target/nostd/$target/release/libghm.a"
  so=$(mktemp --suffix=.so)
  cc -shared -nostdlib -Wl,--gc-sections -o "$so" -Wl,--whole-archive "$lib" -Wl,--no-whole-archive
  undefined=$(nm -D --undefined-only "$so" | awk '$1 == "U" {print $2}' | sort -u)
  extra=$(printf '%s\n' "$undefined" | grep -Ev "$allowed" | grep -v '^$' || true)
  exported=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -c '^ghm_' || true)
  outlined=$(nm "$so" | awk '{print $NF}' | grep 'core_arch' || true)
  rm -f "$so"
  if [ -n "$outlined" ]; then
    echo "FAIL $target: vector intrinsics compiled out of line:" >&2
    printf '  %s\n' $outlined >&2
    status=1
  elif [ -n "$extra" ]; then
    echo "FAIL $target: the no-std library needs symbols beyond $allowed:" >&2
    printf '  %s\n' $extra >&2
    status=1
  else
    echo "ok $target: $exported ghm_* functions; undefined symbols: $(echo $undefined | tr '\n' ' ')"
  fi
done
exit $status
