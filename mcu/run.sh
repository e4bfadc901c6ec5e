#!/usr/bin/env bash
# ghm on a Cortex-M4F (QEMU mps2-an386): builds the firmware of mcu/ and runs it (golden
# vectors, bad inputs, measurements; the fine-tuning example; the same workloads' output
# bits against the host's scalar path, mcu/host), then the
# C API's golden and bad-input programs (ffi-tests/golden.c, errors.c) linked with
# arm-none-eabi-gcc against the thumbv7em static library, then measures flash; fails on any
# mismatch and when a figure (flash, stack, instructions per element) regresses past its
# limit below. Run from the repository root:
#   mcu/run.sh
# needs: qemu-system-arm, gcc-arm-none-eabi, libnewlib-arm-none-eabi, binutils-arm-none-eabi,
# the rustup target thumbv7em-none-eabihf.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
qemu=(timeout 600 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none
  -serial none)
out=target/mcu
mkdir -p "$out"
fail=0

# Limits: the figures measured when they were set plus 1-5%, so that CI catches a
# regression; where a target is met (300 instructions per element, every call), the limit
# is at or below it. The others (1 KB of stack per call, 10 KB of flash for one loss at
# opt-level "s") are not met yet: each figure is printed against both.
# Flash: the compensated f32 sums (kernel/sum.rs) that replaced per-element f64 sums added
# 2.5 KB, the price of 30% fewer instructions per element for GHM-C and 45% for GHM-R; the
# end of the class-index stage buffer took 1.6 KB off. Class-index rows at opt-level "s" cost 623 instructions per element since short
# rows stopped being copied into a stage buffer (the scalar path walks them row by row; the
# vector paths, for which the stage was made, walk a block of rows as one run): 569 before.
# The counting pass's second-region shortcut and its once-per-run label weight took GHM-C
# from 569 to 537 instructions per element and GHM-R from 286 to 258, for 0.3 KB (GHM-C) and
# 0.7 KB (GHM-R) more flash; the polynomials as straight-line code and the one-lane end
# test and region index by branches took GHM-C to 336 and GHM-R to 239, for 1.9 KB more;
# class-index rows walked by cursors (targets and anchor weights) added 0.5 KB.
# The one lane's floors by truncation (a norm's region, exp's reduction) took GHM-C from 315
# to 288, class-index from 368 to 341 and GHM-R from 226 to 206; label weights of exactly 1
# counted as integers, not summed in f64 per run (a class-index row), took class-index from
# 341 to 328. Then the class-index rows on the one lane: a weight of 1 taken without its
# range test and no f64 +0 added per row, 324; the hot column compared as an integer, 308;
# the targets a row makes (0 and 1) not tested by validation, 296 (GHM-C 288, GHM-R 209).
# The stack: 4.0-5.3 KB per call until the one-shot calls tallied in integer counts, weighed
# before updating the caller's state in place, and kept the weights out of the first pass's
# frame (2026-12-07): 1.2-1.4 KB (the EMA step is computed once to weigh and once to
# store; the commit's totals over the regions, integer sums now, keep the fixed cost below
# the earlier one). `ghm_c_new` is making a
# loss; `ghm_c_loss_grad_unbounded` a call on inputs whose loss bound passes f32's range
# (the loss is found first by a run of the second pass with scaled coefficients that writes
# nothing; it was a first pass that also summed the loss per region, 2.4 KB of stack and
# 5.5 KB of flash, until the end of 2026-12-07).
declare -A LIMIT_STACK=([ghm_c_loss_grad]=1260 [ghm_c_loss]=1260 [ghm_c_loss_grad_labels]=1465
  [ghm_c_loss_capi]=1430 [ghm_r_loss_grad]=1290 [ghm_r_loss]=1290 [ghm_c_new]=740
  [ghm_c_loss_grad_unbounded]=1560)
declare -A LIMIT_INSN=([ghm_c_loss_grad]=297 [ghm_c_loss]=300 [ghm_c_loss_grad_labels]=300
  [ghm_c_loss_capi]=297 [ghm_r_loss_grad]=213 [ghm_r_loss]=216)
# Flash limits raised 2026-12-07 (19,584 / 17,224 / 26,552 bytes): a small loss found past a
# loose bound is summed again unscaled (a fuzzer-found error, fixed), and the commit skips
# the loss product of a pass that only counted (3,640 fewer instructions a GHM-C call, 1,240
# a GHM-R call).
declare -A LIMIT_FLASH=([c]=19800 [r]=17400 [both]=26850)
TARGET_STACK=1024 TARGET_INSN=300 TARGET_FLASH_ONE=10240

echo "== Rust firmware: build (opt-level s and 3)"
(cd mcu && nice -n 10 cargo build --release --quiet && nice -n 10 cargo build --profile release-o3 --quiet)
elf=mcu/target/thumbv7em-none-eabihf

run_rust() { # profile
  echo "== Rust firmware ($1): golden vectors, bad inputs, stack and instructions"
  local log="$out/ghm-mcu-$1.txt"
  if ! "${qemu[@]}" -icount shift=0 -semihosting-config enable=on,target=native \
    -kernel "$elf/$1/ghm-mcu" >"$log" 2>&1; then
    cat "$log"
    echo "FAIL: the firmware ($1) exited non-zero"
    fail=1
    return
  fi
  cat "$log"
}
run_rust release
run_rust release-o3

echo "== on-device fine-tuning (GHM-C and BCE; checkpoint and resume)"
if "${qemu[@]}" -semihosting-config enable=on,target=native -kernel "$elf/release/finetune" \
  >"$out/finetune.txt" 2>&1; then
  cat "$out/finetune.txt"
else
  cat "$out/finetune.txt"
  echo "FAIL: the fine-tuning firmware exited non-zero"
  fail=1
fi

echo "== device against host: every output bit of mcu/src/agree.rs's workloads"
nice -n 10 cargo run --quiet --release --manifest-path mcu/host/Cargo.toml >"$out/agree-host.txt"
for profile in release release-o3; do
  if [ -s "$out/agree-host.txt" ] && diff <(grep '^AGREE' "$out/ghm-mcu-$profile.txt") "$out/agree-host.txt"; then
    echo "  $profile: $(wc -l <"$out/agree-host.txt") workloads bit-identical to the host's scalar path"
  else
    echo "FAIL: the M4F ($profile) and the host's scalar path differ"
    fail=1
  fi
done

echo "== stack and instructions per element (opt-level s) against limits and targets"
while read -r name insn stack; do
  key=$name
  printf '  %-26s %5s instr/element (limit %s, target %s)  stack %5s bytes (limit %s, target %s)\n' \
    "$name" "$insn" "${LIMIT_INSN[$key]}" "$TARGET_INSN" "$stack" "${LIMIT_STACK[$key]}" "$TARGET_STACK"
  if [ "$insn" -gt "${LIMIT_INSN[$key]}" ] || [ "$stack" -gt "${LIMIT_STACK[$key]}" ]; then
    echo "FAIL: $name regressed past its limit"
    fail=1
  fi
done < <(sed -n 's/^MEASURE \([^:]*\): [0-9]* instructions\/element at n=[0-9]* (\([0-9]*\) marginal).* stack \([0-9]*\) bytes.*/\1 \2 \3/p' \
  "$out/ghm-mcu-release.txt")
[ "$(grep -c '^MEASURE' "$out/ghm-mcu-release.txt")" -eq 6 ] || { echo "FAIL: measurements missing"; fail=1; }
while read -r name stack; do
  printf '  %-26s %5s                           stack %5s bytes (limit %s, target %s)\n' \
    "$name" "" "$stack" "${LIMIT_STACK[$name]}" "$TARGET_STACK"
  if [ "$stack" -gt "${LIMIT_STACK[$name]}" ]; then
    echo "FAIL: $name regressed past its limit"
    fail=1
  fi
done < <(sed -n 's/^STACK \([^:]*\): \([0-9]*\) bytes$/\1 \2/p' "$out/ghm-mcu-release.txt")
[ "$(grep -c '^STACK' "$out/ghm-mcu-release.txt")" -eq 2 ] || { echo "FAIL: stack figures missing"; fail=1; }

echo "== flash added by ghm (text + rodata + data, against a firmware without ghm)"
flash() { arm-none-eabi-size -A "$1" | awk '$1 == ".text" || $1 == ".rodata" || $1 == ".data" {s += $2} END {print s}'; }
for profile in release release-o3; do
  base=$(flash "$elf/$profile/size-none")
  for v in c r both; do
    size=$(flash "$elf/$profile/size-$v")
    add=$((size - base))
    line="  $profile size-$v: +$add bytes"
    if [ "$profile" = release ]; then
      line="$line (limit ${LIMIT_FLASH[$v]}; target for one loss $TARGET_FLASH_ONE)"
      if [ "$add" -gt "${LIMIT_FLASH[$v]}" ]; then
        echo "FAIL: flash of size-$v regressed past its limit"
        fail=1
      fi
    fi
    echo "$line"
  done
done
# GHM-R's per-element square root (vsqrt.f32) is its kernel's signature.
sqrt_c=$(arm-none-eabi-objdump -d "$elf/release/size-c" | grep -c 'vsqrt' || true)
sqrt_r=$(arm-none-eabi-objdump -d "$elf/release/size-r" | grep -c 'vsqrt' || true)
if [ "$sqrt_c" -ne 0 ]; then
  echo "FAIL: the GHM-C-only firmware links the GHM-R kernel (vsqrt.f32 found)"
  fail=1
elif [ "$sqrt_r" -eq 0 ]; then
  echo "FAIL: the GHM-R firmware has no vsqrt.f32: the check above would prove nothing"
  fail=1
else
  echo "  the GHM-C-only firmware links no GHM-R kernel (no vsqrt.f32; the GHM-R one has it)"
fi

echo "== C API: the thumbv7em static library with arm-none-eabi-gcc and newlib (semihosting)"
nice -n 10 cargo rustc --quiet --release --no-default-features --features panic-handler --lib \
  --crate-type staticlib --target thumbv7em-none-eabihf --target-dir target/mcu-c
lib=target/mcu-c/thumbv7em-none-eabihf/release/libghm.a
cflags=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2 -std=c99 -Wall -Werror
  -Iinclude -Iffi-tests --specs=rdimon.specs -Wl,--section-start=.vectors=0 -Wl,-z,noexecstack
  -Wl,--no-warn-rwx-segments
  -Wl,--wrap=printf,--wrap=fprintf,--wrap=snprintf,--wrap=vprintf,--wrap=vfprintf,--wrap=vsnprintf
  -Wl,--wrap=calloc,--wrap=free)
for prog in golden errors; do
  arm-none-eabi-gcc "${cflags[@]}" -o "$out/c-$prog.elf" mcu/c/startup.c mcu/c/zformat.c mcu/c/bigalloc.c \
    "ffi-tests/$prog.c" "$lib" -lm
done
c_run() { # name, args...
  local name=$1
  shift
  local args=""
  for a in "$name" "$@"; do args="$args,arg=$a"; done
  if "${qemu[@]}" -semihosting-config "enable=on,target=native$args" -kernel "$out/c-$name.elf" \
    >"$out/c-$name.txt" 2>&1; then
    tail -1 "$out/c-$name.txt"
  else
    tail -20 "$out/c-$name.txt"
    echo "FAIL: C program $name exited non-zero"
    fail=1
  fi
}
c_run golden tests/fixtures/mmdet.txt
c_run errors

if [ "$fail" -ne 0 ]; then
  echo "mcu: FAILED"
  exit 1
fi
echo "mcu: ok"
