#!/usr/bin/env python3
"""Where the flash, the stack and the instructions of ghm go on the Cortex-M4F, for the work
on the targets (mcu/run.sh enforces the totals; this breaks them down). Run by
mcu/analyze.sh, which builds the firmware and makes the QEMU execution logs.

usage: analyze.py flash ELF | frames ELF | profile ELF LOG ELEMENTS
"""
import collections, re, subprocess, sys


def symbols(elf):
    """(address, size, demangled name) of every function, sorted by address."""
    out = subprocess.run(["arm-none-eabi-nm", "-S", "-C", "--defined-only", elf],
                         capture_output=True, text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] in "tTwW":
            syms.append((int(parts[0], 16) & ~1, int(parts[1], 16), parts[3]))
    return sorted(syms)


def group(name):
    if name.startswith(("ghm::", "<ghm::")) or "ghm::" in name.split("<")[0]:
        return "ghm"
    if name.startswith("libm::"):
        return "libm"
    if re.match(r"(compiler_builtins::float|__aeabi_d|__(add|sub|mul|div)df3|__aeabi_[fd]2|__aeabi_[ui]2d|__aeabi_l2d|__aeabi_ul2d|__aeabi_dcmp|__(eq|ne|lt|le|gt|ge|un)df2|__float.*df|__fix.*df|__extendsfdf2|__truncdfsf2|compiler_builtins::float::conv)", name):
        return "f64 emulation (compiler_builtins)"
    if name.startswith(("compiler_builtins::mem", "__aeabi_mem", "memcpy", "memset")):
        return "memcpy/memset"
    if name.startswith("core::fmt") or "fmt" in name:
        return "core::fmt"
    return "other"


def flash(elf):
    syms = symbols(elf)
    by = collections.Counter()
    for _, size, name in syms:
        by[group(name)] += size
    print("code by origin (bytes; functions only):")
    for g, n in by.most_common():
        print("  %-36s %6d" % (g, n))
    print("largest functions:")
    for _, size, name in sorted(syms, key=lambda s: -s[1])[:16]:
        print("  %6d  %s" % (size, name[:110]))


PUSH = re.compile(r"\b(push|stmdb)(\.w)?\s+(sp!,\s*)?\{([^}]*)\}")
VPUSH = re.compile(r"\bvpush\s+\{([^}]*)\}")
SUBSP = re.compile(r"\bsub(w|\.w)?\s+sp,\s*(sp,\s*)?#(\d+)")


def reg_count(lst, width):
    n = 0
    for part in lst.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-")
            n += int(re.sub(r"\D", "", b)) - int(re.sub(r"\D", "", a)) + 1
        elif part:
            n += 1
    return n * width


def frames(elf):
    """Each function's own frame: registers pushed and the stack pointer decrement of its
    prologue (the first 12 instructions)."""
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", "-C", "--no-show-raw-insn", elf],
                         capture_output=True, text=True, check=True).stdout
    result = {}
    name, seen = None, 0
    for line in dis.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            name, seen = m.group(1), 0
            result[name] = 0
            continue
        if name is None or not line.strip():
            continue
        seen += 1
        if seen > 12:
            continue
        m = PUSH.search(line)
        if m:
            result[name] += reg_count(m.group(4), 4)
        m = VPUSH.search(line)
        if m:
            result[name] += reg_count(m.group(1), 8 if "d" in m.group(1) else 4)
        m = SUBSP.search(line)
        if m:
            result[name] += int(m.group(3))
    print("largest stack frames (bytes: pushed registers + locals):")
    for name, size in sorted(result.items(), key=lambda kv: -kv[1])[:14]:
        print("  %6d  %s" % (size, name[:110]))


def profile(elf, log, elements):
    """Instructions per function from QEMU's -d in_asm,exec,nochain log: each translation
    block's instruction count (in_asm) times its executions (exec)."""
    sizes, counts = {}, collections.Counter()
    cur, n = None, 0
    for line in open(log, errors="replace"):
        if line.startswith("IN:"):
            cur, n = None, 0
            continue
        m = re.match(r"^0x([0-9a-f]{8}):\s", line)
        if m:
            if cur is None:
                cur = int(m.group(1), 16)
            n += 1
            sizes[cur] = n
            continue
        m = re.match(r"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/", line)
        if m:
            counts[int(m.group(1), 16)] += 1
            cur = None
    syms = symbols(elf)
    starts = [s[0] for s in syms]
    import bisect
    by = collections.Counter()
    total = 0
    for pc, k in counts.items():
        insns = k * sizes.get(pc, 0)
        total += insns
        i = bisect.bisect_right(starts, pc) - 1
        name = syms[i][2] if i >= 0 and pc < syms[i][0] + max(syms[i][1], 2) else "?"
        by[name] += insns
    groups = collections.Counter()
    for name, k in by.items():
        groups[group(name)] += k
    print("%d instructions executed, %.0f per element (%d elements):" % (total, total / elements, elements))
    for g, k in groups.most_common():
        print("  %-36s %5.1f%%  %6.0f per element" % (g, 100.0 * k / total, k / elements))
    print("functions:")
    for name, k in by.most_common(14):
        print("  %5.1f%%  %6.0f per element  %s" % (100.0 * k / total, k / elements, name[:100]))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "flash":
        flash(sys.argv[2])
    elif cmd == "frames":
        frames(sys.argv[2])
    elif cmd == "profile":
        profile(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
