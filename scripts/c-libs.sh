#!/usr/bin/env bash
# Builds the C libraries: target/c/libghm.a and target/c/libghm.so (no std), as plain
# machine code that exports only the ghm_* API.
#
#   scripts/c-libs.sh [cargo arguments...]
#
# e.g. `scripts/c-libs.sh` (the host, no std), `scripts/c-libs.sh --features std` (a user who
# wants std), `scripts/c-libs.sh --target aarch64-unknown-linux-gnu` (output in
# target/c/aarch64-unknown-linux-gnu/). Environment (all optional):
#   GHM_C_OUT   output directory (default target/c, or target/c/<triple> with --target);
#   GHM_C_BUILD_DIR  cargo's target directory for the build (default target/c/cargo);
#   CARGO       the cargo to run (default cargo);
#   CC          the C compiler driver that links, default cc (for a cross target, its gcc);
#   OBJCOPY, AR, NM  the binutils for the target (default: <prefix>-objcopy, ... when CC is
#               <prefix>-gcc or <prefix>-cc, else objcopy, ar, nm).
#
# Steps, and why:
#  1. `cargo rustc --release --no-default-features --features panic-handler --lib
#     --crate-type staticlib` (a C library brings its own panic handler; the Rust library
#     defines none, so that firmware keeps its own): with one crate type the release
#     profile's LTO runs, so the crate, core and libm become one
#     optimised object whose internal functions are already local.
#  2. objcopy removes the `.llvmbc`/`.llvmcmd` sections: the precompiled compiler_builtins
#     objects carry rustc's LLVM bitcode there, which an -flto link with an older LLVM
#     (clang's gold plugin) or nm would try, and fail, to read.
#  3. A partial link (`cc -r`) of the archive's members that the ghm_* functions need, then
#     `objcopy --wildcard --keep-global-symbol='ghm_*'`: every other defined symbol (core's,
#     compiler_builtins', the unwinding stub rust_eh_personality) becomes local, so the
#     library cannot clash with another Rust library or a C runtime in the same program.
#  4. libghm.a is that one object; libghm.so is linked from the same object, so it exports
#     exactly the same functions.
set -euo pipefail
cd "$(dirname "$0")/.."

target=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --target) target="${args[$((i + 1))]:-}" ;;
    --target=*) target="${args[$i]#--target=}" ;;
  esac
done

cc_cmd=${CC:-cc}
read -r -a cc_words <<<"$cc_cmd"
prefix=""
case "$(basename "${cc_words[0]}")" in
  *-gcc | *-cc) prefix="$(basename "${cc_words[0]}")" && prefix="${prefix%-*}-" ;;
esac
objcopy=${OBJCOPY:-${prefix}objcopy}
ar=${AR:-${prefix}ar}
nm=${NM:-${prefix}nm}

build_dir=${GHM_C_BUILD_DIR:-target/c/cargo}
out=${GHM_C_OUT:-target/c${target:+/$target}}
mkdir -p "$out"

"${CARGO:-cargo}" rustc --quiet --release --no-default-features --features panic-handler \
  --lib --crate-type staticlib \
  --target-dir "$build_dir" "$@"
raw="$build_dir/${target:+$target/}release/libghm.a"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 2. No bitcode anywhere.
"$objcopy" --remove-section=.llvmbc --remove-section=.llvmcmd "$raw" "$work/plain.a"

# 3. One relocatable object holding the ghm_* functions and what they reach.
roots=$("$nm" -g --defined-only "$work/plain.a" 2>/dev/null | awk '$3 ~ /^ghm_/ {print $3}' | sort -u)
[ -n "$roots" ] || { echo "c-libs: no ghm_* symbol in $raw" >&2; exit 1; }
undefs=()
for s in $roots; do undefs+=("-Wl,--undefined=$s"); done
"${cc_words[@]}" -r -nostdlib "${undefs[@]}" -o "$work/ghm.o" "$work/plain.a"
"$objcopy" --wildcard --keep-global-symbol='ghm_*' "$work/ghm.o"

# 4. The two libraries from that object.
rm -f "$out/libghm.a"
"$ar" rcs "$out/libghm.a" "$work/ghm.o"
"${cc_words[@]}" -shared -Wl,-soname,libghm.so -Wl,-z,noexecstack -o "$out/libghm.so" "$work/ghm.o"
echo "c-libs: $out/libghm.a and $out/libghm.so ($(echo "$roots" | wc -l) ghm_* functions)"
