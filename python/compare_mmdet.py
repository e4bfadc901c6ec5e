#!/usr/bin/env python3
"""Compare python/ghm_torch.py (libghm through ctypes) with mmdetection 3.3.0's own GHMC/GHMR.

Setup (CPU is enough), from the repository root:

    python3 -m venv .venv
    .venv/bin/pip install torch numpy
    .venv/bin/pip install --no-deps mmdet==3.3.0
    .venv/bin/pip install .          # ghm_torch, with the library built by cargo

Run:

    .venv/bin/python python/compare_mmdet.py [--seed N] [--scale K]

Without `pip install .`, the module next to this script is used, with the library of
`scripts/c-libs.sh` (target/c/libghm.so) or GHM_LIB=path/to/libghm.so.

mmdetection's ghm_loss.py and utils.py are loaded unmodified without mmcv/mmengine, as
tests/fixtures/generate.py does: stub `mmdet`, `mmdet.models`, `mmdet.models.losses` and
`mmdet.registry` packages go into sys.modules and the two files (checked against the wheel's
RECORD sha256) are executed with importlib.

Every case is a sequence of calls on ONE instance of each implementation (the EMA carries
over), with the same random inputs, reduction 'mean' or 'none' (through reduction_override;
'none' outputs are reduced with random weights before backward, so the per-element gradient of
'none' is checked too). Checked per call:
- loss: relative difference <= 1e-5 ('none': every element, with the vector tolerance);
- gradient w.r.t. pred (autograd on both sides): |a - b| <= 1e-5 |b| + 1e-6 max|b|;
- the EMA buffer (acc_sum): equal;
- the per-region counts: the library's (from ghm_*_accumulate on the same inputs) against
  mmdetection's comparisons. They may differ only by elements whose g (as torch computes it in
  float32) lies within EDGE_ULPS ULP of a region edge; such elements are listed, the call's
  loss/gradient check is skipped, and the library's state is re-synchronised from
  mmdetection's acc_sum (through load_state_dict, which imports mmdetection's keys exactly),
  so one edge element does not leak into later calls. Anything else is a failure.
Also: a state_dict round trip (torch.save/torch.load) gives bit-identical later results, and
checkpoints move between mmdetection's modules and these.

Exit status: 0 if everything is within tolerance, 1 otherwise.
"""

import argparse
import base64
import copy
import ctypes
import hashlib
import importlib.metadata
import importlib.util
import io
import os
import sys
import time
import types

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))

LOSS_RTOL = 1e-5
VEC_RTOL, VEC_ATOL_REL = 1e-5, 1e-6
EDGE_ULPS = 4
# The EMA (acc_sum) is compared with the tolerance tests/golden.rs uses; entries that differ
# in their bits are counted and reported separately (see EMA_NOTE).
EMA_RTOL = 1e-6


# --------------------------------------------------------------------------- mmdet loader


def load_mmdet_losses():
    """mmdetection 3.3.0's unmodified ghm_loss.py, without mmcv (as tests/fixtures/generate.py)."""
    dist = importlib.metadata.distribution("mmdet")
    assert dist.version == "3.3.0", f"need mmdet 3.3.0, found {dist.version}"
    pkg_dir = importlib.util.find_spec("mmdet").submodule_search_locations[0]
    losses_dir = os.path.join(pkg_dir, "models", "losses")
    record = {str(f).replace(os.sep, "/"): f.hash.value for f in (dist.files or []) if f.hash}
    for name in ("mmdet", "mmdet.models", "mmdet.models.losses"):
        m = types.ModuleType(name)
        m.__path__ = []
        sys.modules[name] = m

    class _Registry:
        def register_module(self, *args, **kwargs):
            return lambda cls: cls

    registry = types.ModuleType("mmdet.registry")
    registry.MODELS = _Registry()
    sys.modules["mmdet.registry"] = registry
    mod = None
    for short in ("utils", "ghm_loss"):
        path = os.path.join(losses_dir, short + ".py")
        with open(path, "rb") as f:
            data = f.read()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        key = f"mmdet/models/losses/{short}.py"
        assert record.get(key) == digest, f"{key} differs from the wheel's RECORD"
        name = f"mmdet.models.losses.{short}"
        s = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(s)
        sys.modules[name] = mod
        s.loader.exec_module(mod)
    return mod


MM = load_mmdet_losses()
os.environ.setdefault("GHM_TORCH_NO_REGISTER", "1")  # the stub registry is not mmdet's
try:
    import ghm_torch  # noqa: E402  (the installed package: `pip install .`)
except ImportError:
    sys.path.insert(0, HERE)  # not installed: this directory's module (GHM_LIB or target/c/)
    import ghm_torch  # noqa: E402

LIB = ghm_torch.load_library()
print(f"ghm_torch: {ghm_torch.__file__}\nlibrary: {LIB.path}")


# --------------------------------------------------------------------------- inputs


class Gen:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def randn(self, *shape):
        return torch.randn(*shape, generator=self.g)

    def rand(self, *shape):
        return torch.rand(*shape, generator=self.g)

    def randint(self, lo, hi, shape):
        return torch.randint(lo, hi, shape, generator=self.g)


def ghmc_values(G, n, soft=False, zero_frac=0.1):
    """RetinaNet-like logits/targets: easy negatives, positives, hard negatives, outliers."""
    u = G.rand(n)
    x = torch.empty(n)
    t = torch.zeros(n)
    easy, pos = u < 0.8, (u >= 0.8) & (u < 0.88)
    hard, mis_p, mis_n = (u >= 0.88) & (u < 0.95), (u >= 0.95) & (u < 0.975), u >= 0.975
    x[easy] = G.randn(int(easy.sum())) * 1.5 - 4
    x[pos] = G.rand(int(pos.sum())) * 9 - 3
    t[pos] = 1
    x[hard] = G.randn(int(hard.sum())) * 2
    x[mis_p] = G.randn(int(mis_p.sum())) * 1.5 - 7
    t[mis_p] = 1
    x[mis_n] = G.randn(int(mis_n.sum())) * 1.5 + 7
    if soft:
        k = G.rand(n) < 0.07
        t[k] = G.rand(int(k.sum())) * 0.9 + 0.05
    w = (G.rand(n) >= zero_frac).float() * (1 + G.randint(0, 3, (n,)).float())  # 0 / 1 / 2 / 3
    return x, t, w


def edge_logits(bins, per_edge=3):
    """Logits whose sigmoid lies within a few ULP of each region edge (targets 0: g = p)."""
    xs = []
    for k in range(1, bins):
        e = np.float32(k) / np.float32(bins)
        x0 = np.float32(np.log(np.float64(e) / (1 - np.float64(e))))
        xs.append(x0)
        for s in range(1, per_edge + 1):
            xs.append(np.float32(x0 + s * np.spacing(x0)))
            xs.append(np.float32(x0 - s * np.spacing(x0)))
    return torch.tensor(np.array(xs, dtype=np.float32))


def ghmc_labels(G, A, C, zero_frac=0.05):
    """mmdetection's layout: logits [A][C], labels [A] (C = background, a few -1), weights [A]."""
    x = G.randn(A, C) * 1.5 - 4.5
    lab = torch.full((A,), C, dtype=torch.long)
    pos = G.rand(A) < 0.03
    lab[pos] = G.randint(0, C, (int(pos.sum()),))
    lab[G.rand(A) < 0.002] = -1
    rows = torch.nonzero(pos).squeeze(1)
    x[rows, lab[rows]] = G.randn(rows.numel()) * 2 + 1
    w = (G.rand(A) >= zero_frac).float()
    return x, lab, w


def ghmr_values(G, n, zero_frac=0.3):
    d = G.randn(n) * 0.3
    k = G.rand(n) < 0.1
    d[k] = G.randn(int(k.sum())) * 0.01  # within mu: small g
    t = G.randn(n)
    w = (G.rand(n) >= zero_frac).float() * (1 + G.rand(n))  # non-unit values: tot = sum
    return t + d, t, w


# --------------------------------------------------------------------------- checks


def rel(a, b):
    a, b = float(a), float(b)
    return abs(a - b) / max(abs(b), 1e-30)


def vec_check(a, b):
    """(worst ratio of |a-b| to its allowance, max|a-b| / max|b|); ratio <= 1 passes."""
    a, b = a.double().reshape(-1), b.double().reshape(-1)
    if b.numel() == 0:
        return 0.0, 0.0
    m = float(b.abs().max())
    allow = VEC_RTOL * b.abs() + VEC_ATOL_REL * m
    d = (a - b).abs()
    ratio = float((d / allow.clamp_min(1e-300)).max()) if m > 0 else float(d.max() > 0)
    return ratio, float(d.max()) / max(m, 1e-30)


def ulp_distance_to_edges(g, edges):
    """Per element of g (float32): (distance in ULP to the nearest edge, that edge's index)."""
    gi = g.contiguous().view(torch.int32).long()
    ei = edges.contiguous().view(torch.int32).long()
    d = (gi.unsqueeze(1) - ei.unsqueeze(0)).abs()  # g, edges >= 0: ordered like their ints
    dist, k = d.min(dim=1)
    return dist, k


def mmdet_g(kind, x, t, mu):
    """g exactly as mmdetection computes it (float32)."""
    if kind == "c":
        return torch.abs(x.sigmoid() - t)
    diff = x - t
    return torch.abs(diff / torch.sqrt(mu * mu + diff * diff))


def mmdet_counts(g, valid, edges, bins):
    return [int(((g >= edges[i]) & (g < edges[i + 1]) & valid).sum()) for i in range(bins)]


def lib_counts(mod, kind, x, t, w, labels):
    """The library's per-region counts for these inputs (accumulate only reads the state)."""
    stats = ghm_torch.ghm_stats()
    with mod._state() as st:
        LIB.check("ghm_stats_init", LIB.ghm_stats_init(st, ctypes.byref(stats)))
        # every buffer is bound to a name until the call returns (a temporary's data_ptr()
        # would dangle once the temporary is freed)
        xp = x.contiguous()
        if labels:
            A, C = xp.shape
            lab = torch.where((t >= 0) & (t < C), t, torch.full_like(t, -1)).to(torch.int32).contiguous()
            wp = w.contiguous()
            lay = ghm_torch.ghm_class_layout(A, C, C, 1)
            s = LIB.ghm_c_accumulate_labels(st, xp.data_ptr(), ctypes.byref(lay), lab.data_ptr(),
                                            wp.data_ptr(), ctypes.byref(stats))
        else:
            tp, wp = t.contiguous(), w.expand_as(xp).contiguous()
            f = LIB.ghm_c_accumulate if kind == "c" else LIB.ghm_r_accumulate
            s = f(st, xp.data_ptr(), tp.data_ptr(), wp.data_ptr(), xp.numel(), ctypes.byref(stats))
        LIB.check("accumulate", s)
    return [int(round(c)) for c in list(stats.count)[: mod.bins]]


FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("  FAIL:", msg)


def run_case(name, kind, ctor, calls, reduction="mean", labels=False, G=None):
    """calls: list of (x, t, w). Returns (worst loss rel, worst grad ratio, worst ema rel,
    mmdet seconds, ghm seconds, edge calls)."""
    mm = (MM.GHMC if kind == "c" else MM.GHMR)(**ctor)
    mine = (ghm_torch.GHMC if kind == "c" else ghm_torch.GHMR)(**ctor)
    worst = {"loss": 0.0, "grad": 0.0, "grad_rel": 0.0, "ema": 0.0}
    t_mm = t_mine = 0.0
    edge_calls = 0
    mu = ctor.get("mu", 0.02)
    for ci, (x, t, w) in enumerate(calls):
        # inputs as mmdetection sees them, and its bin counts, before the call
        if labels:
            tt, ww = MM._expand_onehot_labels(t, w, x.size(-1))
            g, valid = mmdet_g(kind, x, tt.float(), mu), ww.float() > 0
        else:
            g, valid = mmdet_g(kind, x, t, mu), (w > 0).expand_as(x)
        c_mm = mmdet_counts(g, valid, mm.edges, mm.bins)
        c_lib = lib_counts(mine, kind, x, t, w, labels)
        red = None if reduction == "mean" else reduction
        r = G.rand(*x.shape) if reduction == "none" else None

        outs = {}
        for tag, mod in (("mm", mm), ("mine", mine)):
            p = x.clone().requires_grad_(True)
            t0 = time.perf_counter()
            out = mod(p, t, w, reduction_override=red)
            (out if r is None else (out * r).sum()).backward()
            dt = time.perf_counter() - t0
            outs[tag] = (out.detach(), p.grad)
            if tag == "mm":
                t_mm += dt
            else:
                t_mine += dt

        if c_mm != c_lib:
            # only elements within EDGE_ULPS of an edge may have moved; the cumulative count
            # difference at edge k is the net number of elements that crossed it
            dist, k = ulp_distance_to_edges(g.reshape(-1), mm.edges)
            near = (dist <= EDGE_ULPS) & valid.reshape(-1)
            cum, ok = 0, True
            for e in range(1, mm.bins):
                cum += c_lib[e - 1] - c_mm[e - 1]
                if abs(cum) > int((near & (k == e)).sum()):
                    ok = False
            idx = torch.nonzero(near).squeeze(1)[:10].tolist()
            xs = x.reshape(-1)
            desc = ", ".join(f"#{i}: x={float(xs[i]):.9g} g={float(g.reshape(-1)[i]):.9g} "
                             f"edge[{int(k[i])}]={float(mm.edges[int(k[i])]):.9g} ({int(dist[i])} ulp)"
                             for i in idx)
            (o_mm, _), (o_mine, _) = outs["mm"], outs["mine"]
            info = (f"loss rel {rel(o_mine, o_mm):.1e}" if reduction == "mean" else
                    f"'none' max|a-b|/max|b| {vec_check(o_mine, o_mm)[1]:.1e}")
            if not ok:
                fail(f"{name} call {ci}: counts differ beyond edge elements: mmdet {c_mm} lib {c_lib}")
            else:
                edge_calls += 1
                print(f"  {name} call {ci}: region counts differ by edge elements only "
                      f"(allowed, not checked: {info}; mmdet {c_mm} lib {c_lib}; {int(near.sum())} valid "
                      f"elements within {EDGE_ULPS} ULP of an edge, first ones: {desc})")
                # re-synchronise the EMA from mmdetection's acc_sum and skip this call's check
                if mine.momentum > 0:
                    mine.load_state_dict({"edges": mm.edges, "acc_sum": mm.acc_sum})
                continue

        (o_mm, g_mm), (o_mine, g_mine) = outs["mm"], outs["mine"]
        if reduction == "mean":
            lr = rel(o_mine, o_mm)
            worst["loss"] = max(worst["loss"], lr)
            if lr > LOSS_RTOL:
                fail(f"{name} call {ci}: loss {float(o_mine)!r} vs mmdet {float(o_mm)!r} (rel {lr:.3g})")
        else:
            ratio, _ = vec_check(o_mine, o_mm)
            worst["loss"] = max(worst["loss"], ratio * VEC_RTOL)
            if ratio > 1:
                fail(f"{name} call {ci}: 'none' elements outside tolerance (ratio {ratio:.3g})")
            s_rel = rel((o_mine.double() * r).sum(), (o_mm.double() * r).sum())
            if s_rel > LOSS_RTOL:
                fail(f"{name} call {ci}: weighted sum of 'none' rel {s_rel:.3g}")
        ratio, rmax = vec_check(g_mine, g_mm)
        worst["grad"] = max(worst["grad"], ratio)
        worst["grad_rel"] = max(worst["grad_rel"], rmax)
        if ratio > 1:
            fail(f"{name} call {ci}: gradient outside tolerance (ratio {ratio:.3g}, max|a-b|/max|b| {rmax:.3g})")
        if mine.momentum > 0:
            a, b = mine.acc_sum, mm.acc_sum
            e = float(((a - b).abs() / b.abs().clamp_min(1e-30)).max())
            worst["ema"] = max(worst["ema"], e)
            nbits = int((a != b).sum())
            worst["ema_bits"] = worst.get("ema_bits", 0) + nbits
            if e > EMA_RTOL:
                fail(f"{name} call {ci}: acc_sum differs (max rel {e:.3g}): {a.tolist()} vs {b.tolist()}")
    print(f"  {name:<28} calls {len(calls)}  loss rel {worst['loss']:.2e}  grad max|a-b|/max|b| "
          f"{worst['grad_rel']:.2e} (tolerance use {worst['grad']:.2f})  acc_sum rel {worst['ema']:.1e}"
          + (f" ({worst['ema_bits']} entries not bit-equal)" if worst.get("ema_bits") else "") + f"  "
          f"mmdet {t_mm * 1e3:8.1f} ms  ghm {t_mine * 1e3:7.1f} ms  speed-up {t_mm / max(t_mine, 1e-12):5.1f}x"
          + (f"  [{edge_calls} edge call(s)]" if edge_calls else ""))
    return worst, t_mm, t_mine


def checkpoint_tests(G):
    print("checkpoints:")
    ok = True
    for kind, ctor, make in (
        ("c", dict(bins=30, momentum=0.75), lambda: ghmc_labels(G, 3000, 80)),
        ("r", dict(mu=0.02, bins=10, momentum=0.7, loss_weight=10.0), lambda: ghmr_values(G, 20000)),
    ):
        cls = ghm_torch.GHMC if kind == "c" else ghm_torch.GHMR
        mmcls = MM.GHMC if kind == "c" else MM.GHMR
        batches = [make() for _ in range(5)]
        a = cls(**ctor)
        for x, t, w in batches[:2]:
            a(x, t, w)
        buf = io.BytesIO()
        torch.save(a.state_dict(), buf)
        buf.seek(0)
        b = cls(**ctor)
        b.load_state_dict(torch.load(buf))
        same = True
        for x, t, w in batches[2:]:
            pa, pb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
            la, lb = a(pa, t, w), b(pb, t, w)
            la.backward()
            lb.backward()
            same &= torch.equal(la, lb) and torch.equal(pa.grad, pb.grad) and torch.equal(a.acc_sum, b.acc_sum)
        print(f"  {cls.__name__}: state_dict round trip (strict) -> next 3 calls bit-identical: {same}")
        ok &= same

        # mmdetection checkpoint -> ghm_torch, and back
        m = mmcls(**ctor)
        for x, t, w in batches[:2]:
            m(x, t, w)
        c = cls(**ctor)
        c.load_state_dict(m.state_dict())  # strict: edges + acc_sum are understood
        imported = torch.equal(c.acc_sum, m.acc_sum)
        m2 = mmcls(**ctor)
        m2.load_state_dict(c.state_dict())  # strict: the same keys as mmdet's
        exported = torch.equal(m2.acc_sum, m.acc_sum) and torch.equal(m2.edges, m.edges)
        worst = 0.0
        for x, t, w in batches[2:]:
            lm, lc = m(x, t, w), c(x, t, w)
            worst = max(worst, rel(lc, lm))
        ema_rel = float(((c.acc_sum - m.acc_sum).abs() / m.acc_sum.abs().clamp_min(1e-30)).max())
        close = worst <= LOSS_RTOL and ema_rel <= EMA_RTOL
        print(f"  {cls.__name__}: mmdet checkpoint imported exactly: {imported}; exported to mmdet: {exported}; "
              f"continues in step with mmdet: {close} (loss rel {worst:.1e}, acc_sum rel {ema_rel:.1e})")
        ok &= imported and exported and close

        # a different hyper-parameter set refuses a checkpoint with other bins
        try:
            cls(**dict(ctor, bins=ctor["bins"] + 1)).load_state_dict(a.state_dict())
            print(f"  {cls.__name__}: loading a {ctor['bins']}-bin checkpoint into {ctor['bins'] + 1} bins: NOT refused")
            ok = False
        except RuntimeError as e:
            print(f"  {cls.__name__}: a {ctor['bins']}-bin checkpoint into {ctor['bins'] + 1} bins is refused: "
                  f"{str(e).splitlines()[-1].strip()[:90]}")
    if not ok:
        fail("checkpoint tests")


def error_tests():
    print("errors:")
    m = ghm_torch.GHMC()
    try:
        m(torch.tensor([0.0, float("nan")]), torch.zeros(2), torch.ones(2))
        fail("NaN logit accepted")
    except ghm_torch.GHMError as e:
        print(f"  NaN logit -> GHMError: {e}")
    try:
        m(torch.zeros(2), torch.tensor([0.0, 2.0]), torch.ones(2))
        fail("target 2 accepted")
    except ghm_torch.GHMError as e:
        print(f"  target 2.0 -> GHMError: {e}")
    try:
        ghm_torch.GHMR(bins=65)
        fail("bins 65 accepted")
    except ghm_torch.GHMError as e:
        print(f"  GHMR(bins=65) -> GHMError: {e}")
    try:
        m(torch.zeros(2), torch.zeros(2), torch.ones(2), reduction_override="sum")
        fail("'sum' accepted")
    except ValueError as e:
        print(f"  reduction 'sum' -> ValueError (as mmdet): {e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=20190118)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the batch sizes")
    args = ap.parse_args()
    G = Gen(args.seed)
    S = lambda n: max(1, int(n * args.scale))  # noqa: E731

    print(f"library: {LIB.path}")
    print(f"mmdet {importlib.metadata.version('mmdet')} (ghm_loss.py from the wheel, RECORD-checked), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    header = os.path.join(os.path.dirname(HERE), "include", "ghm.h")
    if os.path.exists(header):
        probs = ghm_torch.check_header(header)
        print(f"ctypes mirrors vs {os.path.relpath(header)}: " + ("match" if not probs else "MISMATCH"))
        for p in probs:
            fail(p)

    default_c = dict()
    coco_c = dict(bins=30, momentum=0.75, use_sigmoid=True, loss_weight=1.0)
    default_r = dict()
    coco_r = dict(mu=0.02, bins=10, momentum=0.7, loss_weight=10.0)
    sizes = [S(20000), S(5000), S(60000), S(800), S(30000)]
    asizes = [S(2000), S(500), S(4000), S(100), S(3000)]

    def vals(**kw):
        return [ghmc_values(G, n, **kw) for n in sizes]

    def labs(C):
        return [ghmc_labels(G, a, C) for a in asizes]

    def regs():
        return [ghmr_values(G, n) for n in sizes]

    def edges_batch(bins):
        out = []
        for n in sizes[:3]:
            x, t, w = ghmc_values(G, n)
            e = edge_logits(bins)
            x[: e.numel()] = e
            t[: e.numel()] = 0
            w[: e.numel()] = 1
            out.append((x, t, w))
        return out

    def broadcast_w():
        out = []
        for n in asizes:
            t = G.randn(n, 4)
            x = t + G.randn(n, 4) * 0.2
            w = (G.rand(n, 1) > 0.3).float() * 2
            out.append((x, t, w))
        return out

    cases = [
        ("ghmc_default", "c", default_c, vals(), "mean", False),
        ("ghmc_coco", "c", coco_c, vals(), "mean", False),
        ("ghmc_coco_soft_lw10", "c", dict(coco_c, loss_weight=10.0), vals(soft=True), "mean", False),
        ("ghmc_bins64_mmt0.9", "c", dict(bins=64, momentum=0.9), vals(), "mean", False),
        ("ghmc_bins1", "c", dict(bins=1, momentum=0.7), vals(), "mean", False),
        ("ghmc_coco_none", "c", coco_c, vals(), "none", False),
        ("ghmc_labels_c80_default", "c", default_c, labs(80), "mean", True),
        ("ghmc_labels_c80_coco", "c", coco_c, labs(80), "mean", True),
        ("ghmc_labels_c5_coco_none", "c", coco_c, labs(5), "none", True),
        ("ghmc_edges_bins10", "c", default_c, edges_batch(10), "mean", False),
        ("ghmc_edges_bins30_coco", "c", coco_c, edges_batch(30), "mean", False),
        ("ghmr_default", "r", default_r, regs(), "mean", False),
        ("ghmr_coco", "r", coco_r, regs(), "mean", False),
        ("ghmr_coco_none", "r", coco_r, regs(), "none", False),
        ("ghmr_mu1_bins64_mmt0.75", "r", dict(mu=1.0, bins=64, momentum=0.75), regs(), "mean", False),
        ("ghmr_broadcast_weight", "r", coco_r, broadcast_w(), "mean", False),
    ]
    print(f"cases (5-call sequences unless fewer; per case worst over its calls):")
    tot_mm = tot_mine = 0.0
    for name, kind, ctor, calls, red, lab in cases:
        _, a, b = run_case(name, kind, ctor, calls, red, lab, G)
        tot_mm += a
        tot_mine += b
    print(f"  total forward+backward: mmdet {tot_mm * 1e3:.1f} ms, ghm_torch {tot_mine * 1e3:.1f} ms "
          f"({tot_mm / tot_mine:.1f}x)")

    checkpoint_tests(G)
    error_tests()
    if FAILURES:
        print(f"\n{len(FAILURES)} failure(s)")
        return 1
    print("\nall within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
