#!/usr/bin/env bash
# Breaks down ghm's flash, stack and instructions on the Cortex-M4F (opt-level "s"): code by
# origin and the largest functions of the GHM-C-only and the both-losses firmware, the
# largest stack frames, and the instructions per function of three GHM-C and three GHM-R
# calls on 1200 elements (QEMU's execution log; about 70 MB of log each, deleted after).
# Not part of CI: mcu/run.sh enforces the totals. Run from the repository root:
#   mcu/analyze.sh
set -euo pipefail
cd "$(dirname "$0")/.."
(cd mcu && nice -n 10 cargo build --release --quiet)
elf=mcu/target/thumbv7em-none-eabihf/release
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
for v in c both; do
  echo "== flash: size-$v"
  python3 mcu/analyze.py flash "$elf/size-$v"
done
echo "== stack frames (the firmware ghm-mcu: the safe and the C API)"
python3 mcu/analyze.py frames "$elf/ghm-mcu"
for v in c r; do
  echo "== instructions: profile-$v (3 calls x 1200 elements; the input generator included)"
  timeout 600 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none \
    -serial none -semihosting-config enable=on,target=native -d in_asm,exec,nochain \
    -D "$log/$v.log" -kernel "$elf/profile-$v"
  python3 mcu/analyze.py profile "$elf/profile-$v" "$log/$v.log" 3600
  rm -f "$log/$v.log"
done
