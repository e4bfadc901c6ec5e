#!/usr/bin/env bash
# Proves that no panic can start inside an exported function of the C library: builds the
# release static library without std (panic = "abort", LTO, debug = 1), links it keeping
# only the code reachable from the `ghm_*` functions (--gc-sections: the linker keeps
# exactly what is reachable from them, through every call, jump, function-pointer and data
# relocation), and fails if any panic machinery survived: core::panicking::*, core::panic*,
# *_fail (slice index failures), unwrap_failed, expect_failed, the panic handler
# rust_begin_unwind. For each call site it prints the Rust source location with its
# inlining chain (from the debug info) and one call path from an exported symbol.
# It checks the host library, the thumbv7em-none-eabihf one (Cortex-M4F) and the aarch64
# one: the code generated, and so the bounds checks the optimiser could not remove, differ.
#
# usage: scripts/check-panics.sh [host|thumbv7em|aarch64]...   (default: all three)
#        exit 0: no reachable panic; 1: some; 2: tool error
# needs: cargo, python3, cc and binutils (host), arm-none-eabi-gcc and -binutils
# (gcc-arm-none-eabi), aarch64-linux-gnu-gcc and -binutils (gcc-aarch64-linux-gnu), and the
# rustup targets thumbv7em-none-eabihf and aarch64-unknown-linux-gnu.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0

check() {
  local name=$1 target=$2 prefix=$3
  local target_dir=target/check-panics
  local lib
  local -a target_args=()
  if [ -n "$target" ]; then
    target_args=(--target "$target")
    lib="$target_dir/$target/release/libghm.a"
  else
    lib="$target_dir/release/libghm.a"
  fi
  local tool
  for tool in "${prefix}gcc" "${prefix}objdump" "${prefix}nm" "${prefix}addr2line"; do
    command -v "${tool}" >/dev/null || { echo "check-panics: $name: $tool not found" >&2; exit 2; }
  done
  cargo rustc --quiet --release --no-default-features --features panic-handler --lib \
    --crate-type staticlib --target-dir "$target_dir" "${target_args[@]}"
  local dir="$work/$name"
  mkdir -p "$dir"
  local out="$dir/libghm-reachable"
  local -a roots
  mapfile -t roots < <("${prefix}nm" --defined-only "$lib" 2>/dev/null | awk '$2 == "T" && $3 ~ /^ghm_/ {print $3}' | sort -u)
  if [ "${#roots[@]}" -eq 0 ]; then
    echo "check-panics: $name: no ghm_* symbol defined in $lib" >&2
    exit 2
  fi
  if [ -z "$target" ]; then
    # A shared object exporting exactly the ghm_* functions.
    printf '{ global: ghm_*; local: *; };\n' >"$dir/exports.map"
    cc -shared -nostdlib -Wl,--gc-sections -Wl,--version-script="$dir/exports.map" -o "$out" \
      -Wl,--whole-archive "$lib" -Wl,--no-whole-archive
  else
    # A static image whose only roots are the ghm_* functions (symbols undefined on the
    # command line are kept by --gc-sections); memcpy/memset stay unresolved.
    local -a keep=()
    local r
    for r in "${roots[@]}"; do keep+=("-Wl,--undefined=$r"); done
    "${prefix}gcc" -nostdlib -static -Wl,--gc-sections -Wl,-e,ghm_c_loss \
      -Wl,--unresolved-symbols=ignore-all -Wl,-z,noexecstack "${keep[@]}" -o "$out" \
      -Wl,--whole-archive "$lib" -Wl,--no-whole-archive
  fi
  local exported
  exported=$("${prefix}nm" --defined-only "$out" | awk '$3 ~ /^ghm_/ && $2 ~ /[Tt]/ {print $3}' | sort -u)
  # Mangled names in the disassembly (demangled ones contain '<' and '+'), demangled to print.
  "${prefix}objdump" -d --no-show-raw-insn "$out" >"$dir/disasm.txt"
  "${prefix}nm" --defined-only "$out" >"$dir/symbols.txt"
  "${prefix}nm" -C --defined-only "$out" >"$dir/demangled.txt"
  echo "check-panics: $name ($lib)"
  ADDR2LINE="${prefix}addr2line" python3 - "$out" "$dir/disasm.txt" "$dir/symbols.txt" "$dir/demangled.txt" $exported <<'PY' || status=$?
import collections, os, re, subprocess, sys

so, disasm_path, symbols_path, demangled_path, *exported = sys.argv[1:]
nice = {}
for a, b in zip(open(symbols_path), open(demangled_path)):
    a, b = a.rstrip("\n").split(" ", 2), b.rstrip("\n").split(" ", 2)
    if len(a) == 3 and len(b) == 3:
        nice[a[2]] = b[2]
def pretty(name):
    return nice.get(name, name)
PANIC = re.compile(r"panic|_fail|unwrap_failed|expect_failed|rust_begin_unwind|begin_panic")

def is_panic(name):
    return bool(PANIC.search(name))

# Functions, their call/jump edges and the panic call sites.
func_re = re.compile(r"^([0-9a-f]+) <(.+)>:$")
insn_re = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s+(.*)$")
target_re = re.compile(r"<([^>+]+)(\+0x[0-9a-f]+)?>")
edges = collections.defaultdict(set)
sites = []  # (address, caller, callee)
current = None
for line in open(disasm_path, encoding="utf-8", errors="replace"):
    line = line.rstrip("\n")
    m = func_re.match(line)
    if m:
        current = m.group(2)
        continue
    m = insn_re.match(line)
    if not m or current is None:
        continue
    addr, mnemonic, operands = m.groups()
    # x86: call, jumps, lea; ARM and AArch64: branches (b, bl, blx, b.ne, cbz, tbz), adr.
    if not (mnemonic.startswith(("call", "j", "lea", "b", "cb", "tb", "adr"))):
        continue
    t = target_re.search(operands)
    if not t:
        continue
    callee = t.group(1)
    if "@plt" in callee or callee == current:
        continue
    edges[current].add(callee)
    if is_panic(callee) and not is_panic(current):
        sites.append((addr, current, callee))

reachable_panic_syms = []
for line in open(symbols_path, encoding="utf-8", errors="replace"):
    parts = line.rstrip("\n").split(" ", 2)
    if len(parts) == 3 and parts[1] in "tTwW" and is_panic(parts[2]):
        reachable_panic_syms.append(pretty(parts[2]))

def path_to(fn):
    """A shortest direct-call path from an exported symbol to fn (None if only indirect)."""
    prev = {e: None for e in exported}
    queue = collections.deque(exported)
    while queue:
        f = queue.popleft()
        if f == fn:
            out = []
            while f is not None:
                out.append(f)
                f = prev[f]
            return list(reversed(out))
        for g in sorted(edges.get(f, ())):
            if g not in prev:
                prev[g] = f
                queue.append(g)
    return None

def source(addr):
    out = subprocess.run([os.environ.get("ADDR2LINE", "addr2line"), "-e", so, "-i", "-f", "-C", "-a", "0x" + addr],
                         capture_output=True, text=True).stdout.splitlines()[1:]
    frames = []
    for i in range(0, len(out) - 1, 2):
        loc = re.sub(r" \(discriminator \d+\)", "", out[i + 1])
        loc = re.sub(r"^.*?/(src/)", r"\1", loc)
        frames.append((out[i], loc))
    return frames

if not reachable_panic_syms and not sites:
    print("check-panics: ok: no panic code reachable from %d exported functions"
          % len(exported))
    sys.exit(0)

print("check-panics: FAIL: panic code is reachable from the exported functions")
print("reachable panic functions: " + ", ".join(sorted(set(reachable_panic_syms))))
by_location = collections.OrderedDict()
for addr, caller, callee in sites:
    frames = source(addr)
    known = [loc for _, loc in frames if not loc.endswith(":?") and ":0" not in loc]
    key = (callee, known[0] if known else "?")
    by_location.setdefault(key, []).append((addr, caller, frames))
print("%d call sites, %d distinct source locations:" % (len(sites), len(by_location)))
for (callee, loc), hits in by_location.items():
    addr, caller, frames = hits[0]
    print("\n  %s  ->  %s   (%d site%s, e.g. 0x%s in %s)"
          % (loc, pretty(callee), len(hits), "" if len(hits) == 1 else "s", addr, pretty(caller)))
    for fn, where in frames:
        print("      inlined in %-55s %s" % (fn, where))
    p = path_to(caller)
    print("      path: " + (" -> ".join(pretty(f) for f in p) if p else "(through a function pointer)"))
sys.exit(1)
PY
}

targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(host thumbv7em aarch64)
for t in "${targets[@]}"; do
  case "$t" in
    host) check host "" "" ;;
    thumbv7em) check thumbv7em thumbv7em-none-eabihf arm-none-eabi- ;;
    aarch64) check aarch64 aarch64-unknown-linux-gnu aarch64-linux-gnu- ;;
    *) echo "check-panics: unknown target $t (host, thumbv7em, aarch64)" >&2; exit 2 ;;
  esac
done
exit "$status"
