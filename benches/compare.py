#!/usr/bin/env python3
"""GHM-C forward + backward on one RetinaNet-sized batch: this crate (through ctypes) against
mmdetection 3.3.0's GHMC, PyTorch's BCE-with-logits and torchvision's sigmoid focal loss.

Setup (once, from the repository root; CPU only, torch is a large download), the same
venv as python/compare_mmdet.py's, with this crate's module and library installed by
`pip install .` (GHM_LIB=path/to/libghm.so overrides the library):

    python3 -m venv .venv && .venv/bin/pip install torch torchvision numpy \\
        && .venv/bin/pip install --no-deps mmdet==3.3.0 && .venv/bin/pip install .

Run from the repository root:

    .venv/bin/python benches/compare.py                  # torch threads: all cores
    .venv/bin/python benches/compare.py --threads 1 --reps 9
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benches/compare.py --reps 9

PyTorch's OpenMP workers spin for milliseconds after each parallel torch op (libgomp's
default wait policy), holding cores that the rows splitting a batch over threads need;
OMP_WAIT_POLICY=PASSIVE (or --threads 1) makes them sleep instead.

The batch: 100,000 anchors x 80 classes (8M logits), ~1% positive anchors, class-index labels
[A] with background = 80 and per-anchor label weights [A] (2% zero: ignored anchors), exactly
as mmdetection's AnchorHead hands them to its loss. Each row times one forward plus backward
(loss and dL/dlogits); the median over --reps repetitions after one warm-up is reported,
with elements/s and ratios against mmdetection's COCO GHMC (bins 30, momentum 0.75) and
against PyTorch's BCE-with-logits. Output buffers and the one-hot targets the value-target
rows need are made once, outside the timings (mmdetection's GHMC builds its one-hot inside,
so that cost is in its row).

mmdetection's ghm_loss.py is loaded unmodified without mmcv, as tests/fixtures/generate.py
does (stub mmdet packages and registry in sys.modules).
"""

import argparse
import concurrent.futures
import ctypes
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))


def parse():
    ap = argparse.ArgumentParser(description="GHM-C forward+backward benchmark")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: all cores)")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per row (median reported)")
    ap.add_argument("--anchors", type=int, default=100_000)
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


def main():
    args = parse()
    torch.set_num_threads(args.threads)
    # compare_mmdet loads mmdet's ghm_loss.py behind stub packages, and ghm_torch + the library
    sys.argv = sys.argv[:1]
    import compare_mmdet as cm  # noqa: E402
    import ghm_torch as gt  # noqa: E402
    import torchvision  # noqa: E402
    from torchvision.ops import sigmoid_focal_loss  # noqa: E402

    lib = gt.load_library()
    A, C = args.anchors, args.classes
    N = A * C
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randn(A, C, generator=g) * 1.5 - 4.5
    labels = torch.full((A,), C, dtype=torch.long)
    pos = torch.rand(A, generator=g) < 0.01
    labels[pos] = torch.randint(0, C, (int(pos.sum()),), generator=g)
    rows = torch.nonzero(pos).squeeze(1)
    x[rows, labels[rows]] = torch.randn(rows.numel(), generator=g) * 2 + 1
    aw = (torch.rand(A, generator=g) >= 0.02).float()
    x = x.contiguous()
    lab32 = labels.to(torch.int32).contiguous()
    onehot = F.one_hot(labels.clamp(max=C), C + 1)[:, :C].float().contiguous()
    w_full = aw[:, None].expand(A, C).contiguous()
    grad = torch.empty_like(x)
    grad2 = torch.empty_like(x)

    print(f"batch: {A} anchors x {C} classes = {N / 1e6:.1f}M logits, {int(pos.sum())} positive anchors "
          f"({100 * float(pos.float().mean()):.2f}%), {int((aw == 0).sum())} ignored anchors")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"torch.set_num_threads({args.threads}) -> get_num_threads() = {torch.get_num_threads()}, "
          f"os.cpu_count() = {os.cpu_count()}")
    print(f"library: {lib.path}")
    print(f"repetitions: 1 warm-up + {args.reps} timed, median reported\n")

    def config(bins, momentum):
        c = lib.ghm_c_config_default()
        c.bins, c.momentum = bins, momentum
        return c

    def new_state(cfg):
        st = gt.ghm_state()
        lib.check("ghm_c_init", lib.ghm_c_init(ctypes.addressof(st), ctypes.byref(cfg)))
        return st

    loss = ctypes.c_float()

    # ---- rows: each a callable doing one forward + backward
    def crate_labels(cfg):
        st = new_state(cfg)

        def run():
            lib.check("ghm_c_loss_labels", lib.ghm_c_loss_labels(
                ctypes.addressof(st), x.data_ptr(), A, C, lab32.data_ptr(), aw.data_ptr(),
                ctypes.byref(loss), grad.data_ptr()))
            return loss.value
        return run

    def crate_values(cfg):
        st = new_state(cfg)

        def run():
            lib.check("ghm_c_loss", lib.ghm_c_loss(
                ctypes.addressof(st), x.data_ptr(), onehot.data_ptr(), w_full.data_ptr(), N,
                ctypes.byref(loss), grad.data_ptr()))
            return loss.value
        return run

    pool = concurrent.futures.ThreadPoolExecutor(2)

    def crate_two_threads(cfg, counting=False):
        """The three phases over 2 threads; with `counting`, counting stats and the loss as
        the sum of the applies' shares."""
        st = new_state(cfg)
        half = A // 2
        parts = [(0, half), (half, A)]
        layouts = [gt.ghm_class_layout(hi - lo, C, C, 1) for lo, hi in parts]
        stats = [gt.ghm_stats(), gt.ghm_stats()]
        w = gt.ghm_region_weights()
        fsz = ctypes.sizeof(ctypes.c_float)
        isz = ctypes.sizeof(ctypes.c_int32)

        def acc(i):  # ctypes releases the GIL for the duration of the foreign call
            lo = parts[i][0]
            init = lib.ghm_stats_init_counting if counting else lib.ghm_stats_init
            lib.check("ghm_stats_init", init(ctypes.addressof(st), ctypes.byref(stats[i])))
            lib.check("ghm_c_accumulate_labels", lib.ghm_c_accumulate_labels(
                ctypes.addressof(st), x.data_ptr() + lo * C * fsz, ctypes.byref(layouts[i]),
                lab32.data_ptr() + lo * isz, aw.data_ptr() + lo * fsz, ctypes.byref(stats[i])))

        shares = [ctypes.c_double(), ctypes.c_double()]

        def app(i):
            lo = parts[i][0]
            args = (ctypes.byref(w), x.data_ptr() + lo * C * fsz, ctypes.byref(layouts[i]),
                    lab32.data_ptr() + lo * isz, aw.data_ptr() + lo * fsz, None, grad2.data_ptr() + lo * C * fsz)
            if counting:
                lib.check("ghm_c_apply_labels_loss", lib.ghm_c_apply_labels_loss(*args, ctypes.byref(shares[i])))
            else:
                lib.check("ghm_c_apply_labels", lib.ghm_c_apply_labels(*args))

        def run():
            list(pool.map(acc, (0, 1)))
            lib.check("ghm_stats_merge", lib.ghm_stats_merge(ctypes.byref(stats[1]), ctypes.byref(stats[0])))
            lib.check("ghm_commit", lib.ghm_commit(ctypes.byref(stats[0]), ctypes.addressof(st), ctypes.byref(w),
                                                   None if counting else ctypes.byref(loss)))
            list(pool.map(app, (0, 1)))
            return shares[0].value + shares[1].value if counting else loss.value
        return run

    def autograd_row(fn):
        def run():
            p = x.clone().requires_grad_(True)  # the clone (32 MB) is part of every autograd row
            out = fn(p)
            out.backward()
            return float(out.detach())
        return run

    mm_default = cm.MM.GHMC()
    mm_coco = cm.MM.GHMC(bins=30, momentum=0.75, use_sigmoid=True, loss_weight=1.0)
    drop_in = gt.GHMC(bins=30, momentum=0.75, use_sigmoid=True, loss_weight=1.0)
    drop_in_2 = gt.GHMC(bins=30, momentum=0.75, use_sigmoid=True, loss_weight=1.0, threads=2)
    coco = config(30, 0.75)

    rows = [
        ("ghm ghm_c_loss_labels, COCO, 1 thread", crate_labels(coco), "crate"),
        ("ghm ghm_c_loss_labels, defaults, 1 thread", crate_labels(config(10, 0.0)), "crate"),
        ("ghm ghm_c_loss (value targets), COCO, 1 thread", crate_values(coco), "crate"),
        ("ghm 3-phase labels, COCO, 2 threads", crate_two_threads(coco), "crate"),
        ("ghm 3-phase labels, counting stats, COCO, 2 threads", crate_two_threads(coco, counting=True), "crate"),
        ("ghm bins=1 mmt=0 (= mean BCE), 1 thread", crate_labels(config(1, 0.0)), "crate"),
        ("ghm_torch.GHMC drop-in, COCO (autograd)", autograd_row(lambda p: drop_in(p, labels, aw, avg_factor=1.0)), "crate"),
        ("ghm_torch.GHMC drop-in, COCO, threads=2 (autograd)",
         autograd_row(lambda p: drop_in_2(p, labels, aw, avg_factor=1.0)), "crate"),
        ("ghm_torch.GHMC drop-in, COCO, forward only", lambda: float(drop_in(x, labels, aw)), "crate"),
        ("ghm_torch.GHMC drop-in, COCO, threads=2, forward only", lambda: float(drop_in_2(x, labels, aw)), "crate"),
        ("mmdet GHMC() defaults", autograd_row(lambda p: mm_default(p, labels, aw)), "mmdet"),
        ("mmdet GHMC COCO (bins 30, mmt 0.75)", autograd_row(lambda p: mm_coco(p, labels, aw)), "mmdet"),
        ("torch F.binary_cross_entropy_with_logits", autograd_row(
            lambda p: F.binary_cross_entropy_with_logits(p, onehot, reduction="mean")), "torch"),
        ("torchvision sigmoid_focal_loss", autograd_row(
            lambda p: sigmoid_focal_loss(p, onehot, alpha=0.25, gamma=2.0, reduction="mean")), "torch"),
    ]

    # sanity: the crate's rows agree with each other and with mmdet; bins=1 is plain BCE
    ref_state = new_state(coco)
    lib.check("ghm_c_loss_labels", lib.ghm_c_loss_labels(ctypes.addressof(ref_state), x.data_ptr(), A, C,
                                                       lab32.data_ptr(), aw.data_ptr(), ctypes.byref(loss), grad.data_ptr()))
    l_crate = loss.value
    l_mm = float(cm.MM.GHMC(bins=30, momentum=0.75)(x, labels, aw))
    l_thr = crate_two_threads(coco)()
    grad2.fill_(float("nan"))
    l_cnt = crate_two_threads(coco, counting=True)()
    same_cnt = torch.equal(grad, grad2)
    bce_state = new_state(config(1, 0.0))
    lib.check("ghm_c_loss_labels", lib.ghm_c_loss_labels(ctypes.addressof(bce_state), x.data_ptr(), A, C,
                                                       lab32.data_ptr(), aw.data_ptr(), ctypes.byref(loss), None))
    bce = float((F.binary_cross_entropy_with_logits(x, onehot, reduction="none").double() * w_full).sum() / w_full.sum())
    print(f"check, first call: crate COCO loss {l_crate:.7g}, mmdet {l_mm:.7g} (rel {abs(l_crate - l_mm) / l_mm:.1e}); "
          f"2 threads {l_thr:.7g}, counting stats {l_cnt:.7g} (grad bit-identical: {same_cnt}); "
          f"bins=1 {loss.value:.7g} vs torch masked-mean BCE {bce:.7g} (rel {abs(loss.value - bce) / bce:.1e})\n")

    results = []
    for name, fn, group in rows:
        fn()  # warm-up
        ts = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        med = statistics.median(ts)
        results.append((name, med, group))
        print(f"  ... {name}: {med * 1e3:.1f} ms", file=sys.stderr)
    pool.shutdown()

    t_coco = next(t for n, t, _ in results if n.startswith("mmdet GHMC COCO"))
    t_bce = next(t for n, t, _ in results if n.startswith("torch F.binary"))
    print(f"{'forward + backward, 8M logits':<48} {'median ms':>10} {'Melem/s':>9} {'vs mmdet COCO':>14} {'vs torch BCE':>13}")
    for name, t, _ in results:
        print(f"{name:<48} {t * 1e3:10.1f} {N / t / 1e6:9.1f} {t_coco / t:13.1f}x {t_bce / t:12.2f}x")
    print("\n'vs' columns: how many times faster than that row (>1: faster).")
    print("No plain BCE entry point in libghm: the bins=1, momentum=0 row is GHM-C with one region, "
          "whose weights are all 1, i.e. mean BCE-with-logits over the valid elements (checked above).")


if __name__ == "__main__":
    main()
