#!/usr/bin/env bash
# The C side under checkers, failing on any report:
#  1. builds the C libraries (libghm.a, libghm.so) with scripts/c-libs.sh into
#     target/sanitize/c;
#  2. compiles every ffi-tests/*.c and *.cpp with clang's AddressSanitizer and
#     UndefinedBehaviorSanitizer (-fno-sanitize-recover=all) against the static library and
#     runs it (programs that read argv[1] get tests/fixtures/mmdet.txt, as in tests/ffi.rs);
#  3. runs the same programs, built without sanitizers (static and shared library), under
#     valgrind memcheck (--error-exitcode=1 --leak-check=full, every leak kind an error);
#  4. builds scripts/c/no_malloc.c (its own malloc/calloc/realloc/free that count calls
#     while armed) against both libraries, checks that its counter catches an allocation
#     (self-test), and that the library makes none; and runs it under valgrind too.
#
# usage: scripts/sanitize.sh        needs: cargo, clang, clang++, valgrind
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=target/sanitize
lib_dir="$target_dir/c"
bin="$target_dir/bin"
fixture=tests/fixtures/mmdet.txt
mkdir -p "$bin"

GHM_C_OUT="$lib_dir" GHM_C_BUILD_DIR="$target_dir/cargo" scripts/c-libs.sh >/dev/null
static_lib="$lib_dir/libghm.a"
shared_link=(-L"$lib_dir" -lghm -Wl,-rpath,"$PWD/$lib_dir")

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
valgrind=(valgrind --quiet --error-exitcode=1 --leak-check=full --show-leak-kinds=all
  --errors-for-leak-kinds=all --track-origins=yes)

failures=()
run() { # label, command...
  local label=$1
  shift
  local log="$bin/$label.log"
  if "$@" >"$log" 2>&1; then
    echo "ok   $label: $(grep -E '^[a-z_]+:' "$log" | tail -1)"
  else
    echo "FAIL $label (exit $?):"
    sed 's/^/    /' "$log" | tail -40
    failures+=("$label")
  fi
}

shopt -s nullglob
sources=(ffi-tests/*.c ffi-tests/*.cpp)
[ ${#sources[@]} -gt 0 ] || { echo "sanitize: no programs in ffi-tests/" >&2; exit 2; }
for src in "${sources[@]}"; do
  stem=$(basename "${src%.*}")
  # MPI programs need mpicc and mpirun: tests/ffi.rs runs mpi.c with 2 and 4 ranks.
  if grep -q '#include <mpi.h>' "$src"; then
    echo "skip $stem: an MPI program (run under mpirun by tests/ffi.rs)"
    continue
  fi
  case "$src" in
    *.cpp) cc=clang++ std=-std=c++17 ;;
    *) cc=clang std=-std=c11 ;;
  esac
  args=()
  if grep -q 'argv\[1\]' "$src"; then args=("$fixture"); fi
  flags=("$std" -pthread -Wall -Wextra -Werror -gdwarf-4 -Iinclude) # valgrind 3.19 reads no DWARF 5

  "$cc" "${flags[@]}" -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
    -fno-sanitize-recover=all "$src" "$static_lib" -lm -o "$bin/$stem-asan-ubsan"
  run "$stem [asan+ubsan, static]" "$bin/$stem-asan-ubsan" "${args[@]}"

  "$cc" "${flags[@]}" -O1 "$src" "$static_lib" -lm -o "$bin/$stem-static"
  "$cc" "${flags[@]}" -O1 "$src" "${shared_link[@]}" -lm -o "$bin/$stem-shared"
  run "$stem [valgrind, static]" "${valgrind[@]}" "$bin/$stem-static" "${args[@]}"
  run "$stem [valgrind, shared]" "${valgrind[@]}" "$bin/$stem-shared" "${args[@]}"
done

# No allocation: the interposing allocator must see calls when there are some...
nm_flags=(-std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -gdwarf-4 -Iinclude scripts/c/no_malloc.c)
clang "${nm_flags[@]}" -DGHM_NO_MALLOC_SELFTEST "$static_lib" -lm -o "$bin/no_malloc-selftest"
if "$bin/no_malloc-selftest" >"$bin/no_malloc-selftest.log" 2>&1; then
  echo "FAIL no_malloc self-test: an allocation while armed went uncounted"
  failures+=("no_malloc self-test")
else
  echo "ok   no_malloc self-test: $(tail -1 "$bin/no_malloc-selftest.log")"
fi
# ...and see none from the library, linked either way.
clang "${nm_flags[@]}" "$static_lib" -lm -o "$bin/no_malloc-static"
clang "${nm_flags[@]}" "${shared_link[@]}" -lm -o "$bin/no_malloc-shared"
run "no_malloc [static]" "$bin/no_malloc-static"
run "no_malloc [shared]" "$bin/no_malloc-shared"
run "no_malloc [valgrind, static]" "${valgrind[@]}" "$bin/no_malloc-static"

if [ ${#failures[@]} -gt 0 ]; then
  echo "sanitize: ${#failures[@]} failed: ${failures[*]}" >&2
  exit 1
fi
echo "sanitize: ok (${#sources[@]} programs under ASan+UBSan and valgrind; no allocation)"
