"""Detector test bed: torchvision's RetinaNet on canvases of real handwritten digits.

    python bed/run.py one --cls focal --opt sgd --seed 0        # one training run, prints JSON
    python bed/run.py ablation                                  # the whole ablation (resumable)
    python bed/figures.py                                       # docs/*.svg from the results

See bed/README.md. Everything runs on one CPU thread; no downloads (the digits are
scikit-learn's bundled `load_digits`, the network is initialised at random).
"""

import argparse
import ctypes
import json
import math
import os
import sys
import time
from collections import OrderedDict, deque

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))
sys.path.insert(0, HERE)
os.environ.setdefault("GHM_TORCH_NO_REGISTER", "1")
import ghm_torch as gt  # noqa: E402
from ap import mean_ap  # noqa: E402

from torchvision.models.detection import RetinaNet  # noqa: E402
from torchvision.models.detection.anchor_utils import AnchorGenerator  # noqa: E402
from torchvision.models.detection.retinanet import RetinaNetHead  # noqa: E402
from torchvision.ops import boxes as box_ops, sigmoid_focal_loss  # noqa: E402

# ----------------------------------------------------------------------------- data

BED = {
    # the main configuration: 64x64 canvases, 10 digit classes, 1-3 digits of 12-20 px
    "main": dict(canvas=64, classes=10, objects=(1, 3), size=(16, 26), train=2000, test=300, iters=800, batch=16),
    # the second configuration: 5 classes (digits 0-4), denser canvases (2-5 digits)
    "dense5": dict(canvas=64, classes=5, objects=(2, 5), size=(16, 26), train=2000, test=300, iters=800, batch=16),
}

_DATA = {}


def make_canvases(bed, split):
    """Canvases of load_digits images: split 'train' uses 1200 digit images, 'test' the other
    597 (held out). Deterministic: the data do not depend on the run's seed."""
    key = (json.dumps(bed, sort_keys=True), split)
    if key in _DATA:
        return _DATA[key]
    from sklearn.datasets import load_digits

    d = load_digits()
    perm = np.random.RandomState(12345).permutation(len(d.target))
    idx = perm[:1200] if split == "train" else perm[1200:]
    idx = idx[d.target[idx] < bed["classes"]]
    imgs = torch.tensor(d.images[idx] / 16.0, dtype=torch.float32)
    labels = d.target[idx]
    rng = np.random.RandomState(1 if split == "train" else 2)
    S = bed["canvas"]
    n = bed[split]
    canvases = torch.zeros(n, 1, S, S)
    targets = []
    for i in range(n):
        k = rng.randint(bed["objects"][0], bed["objects"][1] + 1)
        boxes, labs = [], []
        for _ in range(k):
            for _try in range(30):
                s = rng.randint(bed["size"][0], bed["size"][1] + 1)
                x0, y0 = rng.randint(0, S - s + 1), rng.randint(0, S - s + 1)
                j = rng.randint(len(idx))
                patch = F.interpolate(imgs[j][None, None], size=(s, s), mode="bilinear", align_corners=False)[0, 0]
                ys, xs = torch.nonzero(patch > 0.25, as_tuple=True)
                box = [x0 + xs.min().item(), y0 + ys.min().item(), x0 + xs.max().item() + 1, y0 + ys.max().item() + 1]
                if boxes and box_ops.box_iou(torch.tensor([box], dtype=torch.float32),
                                             torch.tensor(boxes, dtype=torch.float32)).max() > 0.1:
                    continue
                canvases[i, 0, y0:y0 + s, x0:x0 + s] = torch.maximum(canvases[i, 0, y0:y0 + s, x0:x0 + s], patch)
                boxes.append(box)
                labs.append(int(labels[j]))
                break
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        "labels": torch.tensor(labs, dtype=torch.int64)})
    canvases += 0.05 * torch.from_numpy(rng.randn(n, 1, S, S).astype(np.float32))
    canvases.clamp_(0, 1)
    _DATA[key] = (canvases, targets)
    return _DATA[key]


# ----------------------------------------------------------------------------- model


class Backbone(nn.Module):
    """Four stride-2 convolutions and a two-level FPN (strides 8 and 16)."""

    def __init__(self, ch=32):
        super().__init__()
        self.out_channels = ch

        def block(i, o, s):
            return nn.Sequential(nn.Conv2d(i, o, 3, stride=s, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))

        self.stem = nn.Sequential(block(1, 16, 2), block(16, 32, 2), block(32, 48, 2))  # stride 8
        self.c4 = block(48, 64, 2)  # stride 16
        self.lat3 = nn.Conv2d(48, ch, 1)
        self.lat4 = nn.Conv2d(64, ch, 1)
        self.out3 = nn.Conv2d(ch, ch, 3, padding=1)
        self.out4 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        c3 = self.stem(x)
        c4 = self.c4(c3)
        p4 = self.lat4(c4)
        p3 = self.lat3(c3) + F.interpolate(p4, size=c3.shape[-2:], mode="nearest")
        return OrderedDict([("0", self.out3(p3)), ("1", self.out4(p4))])


ANCHOR_SIZES = ((16, 20, 25), (32, 40, 50))
ASPECTS = ((1.0, 1.5, 2.0),) * 2


class BedRetinaNet(RetinaNet):
    """torchvision's RetinaNet (anchors, matcher with its ignore band, NMS, postprocessing)
    whose compute_loss hands the matched anchors of the whole batch to the bed's losses."""

    def compute_loss(self, targets, head_outputs, anchors):
        matched = []
        for a, t in zip(anchors, targets):
            if t["boxes"].numel() == 0:
                matched.append(torch.full((a.size(0),), -1, dtype=torch.int64))
            else:
                matched.append(self.proposal_matcher(box_ops.box_iou(t["boxes"], a)))
        return self.bed_loss(self, targets, head_outputs, anchors, matched)


def build_model(bed, seed):
    torch.manual_seed(seed)
    S = bed["canvas"]
    A = len(ANCHOR_SIZES[0]) * len(ASPECTS[0])
    backbone = Backbone()
    # torchvision's v2 head (GroupNorm in its convolutions), as retinanet_resnet50_fpn_v2 builds it
    head = RetinaNetHead(backbone.out_channels, A, bed["classes"], norm_layer=lambda c: nn.GroupNorm(8, c))
    m = BedRetinaNet(backbone, num_classes=bed["classes"], min_size=S, max_size=S, image_mean=[0.5],
                     image_std=[0.5], anchor_generator=AnchorGenerator(ANCHOR_SIZES, ASPECTS), head=head,
                     score_thresh=0.05, detections_per_img=50)
    m.level_sizes = [(S // 8) ** 2 * A, (S // 16) ** 2 * A]
    return m


# ----------------------------------------------------------------------------- losses

REGIONS = 10  # regions of g for the traces


class Harmonized:
    """GHM-C or GHM-R through the library's three phases (accumulate, commit, apply), with the
    bed's variants on top: one call per FPN level or per batch, a count prior added to the
    stats before commit, a histogram summed over the last K batches, and a scale."""

    def __init__(self, kind, bins, momentum, mu=0.02, loss_weight=1.0, options=0, cap=0.0,
                 per_level=False, prior=0.0, window=1, scale="none"):
        self.kind, self.per_level, self.prior, self.window, self.scale = kind, per_level, prior, window, scale
        self.lib = gt.load_library()
        cfg = self.lib.ghm_c_config_default() if kind == "c" else self.lib.ghm_r_config_default()
        cfg.bins, cfg.momentum, cfg.mu, cfg.loss_weight = bins, momentum, mu, loss_weight
        cfg.options, cfg.weight_cap = options, cap
        self.cfg = cfg
        self.state = gt.ghm_state()
        init = self.lib.ghm_c_init if kind == "c" else self.lib.ghm_r_init
        self.lib.check("init", init(ctypes.addressof(self.state), ctypes.byref(cfg)))
        self.history = deque(maxlen=window)
        self.bins = bins

    def _one(self, x, lab_or_t, weights, npos):
        """One commit: x [n, C] logits with labels [n] (GHM-C) or x, t [n] (GHM-R)."""
        lib, st = self.lib, ctypes.addressof(self.state)
        stats = gt.ghm_stats()
        lib.check("stats_init", lib.ghm_stats_init(st, ctypes.byref(stats)))
        xf = gt._f32(x)
        if self.kind == "c":
            layout = gt.ghm_class_layout(xf.shape[0], xf.shape[1], xf.shape[1], 1)
            lab = lab_or_t.to(torch.int32).contiguous()
            aw = gt._f32(weights)
            lib.check("acc", lib.ghm_c_accumulate_labels(st, gt._ptr(xf), ctypes.byref(layout), gt._ptr(lab),
                                                           gt._ptr(aw), ctypes.byref(stats)))
        else:
            tf = gt._f32(lab_or_t)
            lib.check("acc", lib.ghm_r_accumulate(st, gt._ptr(xf), gt._ptr(tf), None, xf.numel(), ctypes.byref(stats)))
        M = self.bins
        counts = np.array(stats.count[:M])
        n_valid = counts.sum()
        if self.window > 1:
            self.history.append(counts.copy())
            counts = np.mean(np.stack(self.history), axis=0)
        if self.prior > 0:
            counts = counts + self.prior * n_valid / M
        if self.window > 1 or self.prior > 0:
            for k in range(M):
                stats.count[k] = float(counts[k])
        w, loss = gt.ghm_weights(), ctypes.c_float()
        lib.check("commit", lib.ghm_commit(ctypes.byref(stats), st, ctypes.byref(w), ctypes.byref(loss)))
        s = 1.0
        if self.scale == "pos":
            s = max(n_valid, 1.0) / max(npos, 1.0)
        grad = torch.empty_like(xf)
        out = gt.ghm_output(gt.GHM_OUTPUT_GRADIENT, s, 0)
        if self.kind == "c":
            lib.check("apply", lib.ghm_c_apply_labels(ctypes.byref(w), gt._ptr(xf), ctypes.byref(layout), gt._ptr(lab),
                                                        gt._ptr(aw), ctypes.byref(out), gt._ptr(grad)))
        else:
            lib.check("apply", lib.ghm_r_apply(ctypes.byref(w), gt._ptr(xf), gt._ptr(tf), None, xf.numel(),
                                                 ctypes.byref(out), gt._ptr(grad)))
        value = torch.tensor(float(loss.value) * s)
        return gt._Harmonized.apply(x, None, value, grad, 0)

    def __call__(self, chunks, npos):
        """chunks: list of (x, labels/targets, weights) (one per level, or one for the batch)."""
        return sum(self._one(x, t, w, npos) for x, t, w in chunks)


def cls_loss_plain(kind, logits, labels, valid, npos_img):
    """BCE (torchvision's normalisation: each image's sum over valid anchors divided by its
    number of foreground anchors, averaged over images) or focal (gamma 2, alpha 0.25)."""
    B, A, C = logits.shape
    onehot = F.one_hot(labels.clamp(max=C), C + 1)[..., :C].to(logits.dtype)
    if kind == "bce":
        per = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    else:
        per = sigmoid_focal_loss(logits, onehot, alpha=0.25, gamma=2.0, reduction="none")
    per = (per * valid[..., None]).sum(dim=(1, 2)) / npos_img.clamp(min=1)
    return per.mean()


class BedLoss:
    def __init__(self, cls, box, ghmc=None, ghmr=None, warmup=0):
        self.cls, self.box, self.warmup, self.it = cls, box, warmup, 0
        self.ghmc = Harmonized("c", **ghmc) if cls == "ghmc" else None
        self.ghmr = Harmonized("r", **ghmr) if box == "ghmr" else None
        self.trace = None  # set to a list to record gradient shares

    def __call__(self, model, targets, head_outputs, anchors, matched):
        logits = head_outputs["cls_logits"]
        B, A, C = logits.shape
        m = torch.stack(matched)
        valid = (m != -2).float()
        labels = torch.full_like(m, C)
        for i, t in enumerate(targets):
            fg = m[i] >= 0
            labels[i, fg] = t["labels"][m[i, fg]]
        npos_img = (m >= 0).sum(dim=1).float()
        npos = float(npos_img.sum())
        if self.cls in ("bce", "focal"):
            lc = cls_loss_plain(self.cls, logits, labels, valid, npos_img)
        else:
            if self.ghmc.per_level:
                parts = logits.split(model.level_sizes, dim=1)
                lp, vp = labels.split(model.level_sizes, dim=1), valid.split(model.level_sizes, dim=1)
                chunks = [(x.reshape(-1, C), l.reshape(-1), v.reshape(-1)) for x, l, v in zip(parts, lp, vp)]
            else:
                chunks = [(logits.reshape(-1, C), labels.reshape(-1), valid.reshape(-1))]
            lc = self.ghmc(chunks, npos)
            if self.it < self.warmup:
                a = self.it / self.warmup
                lc = a * lc + (1 - a) * cls_loss_plain("bce", logits, labels, valid, npos_img)
        if self.trace is not None and self.it % 25 == 0:
            self.record(lc, logits, labels, valid)
        # box branch: positive anchors only, regression targets encoded as torchvision does
        coder = model.head.regression_head.box_coder
        reg = head_outputs["bbox_regression"]
        xs, ts, levels = [], [], []
        edges = np.cumsum([0] + model.level_sizes)
        for i, t in enumerate(targets):
            fg = torch.where(m[i] >= 0)[0]
            xs.append(reg[i, fg])
            ts.append(coder.encode_single(t["boxes"][m[i, fg]], anchors[i][fg]))
            levels.append(torch.bucketize(fg, torch.tensor(edges[1:-1]), right=True))
        if self.box == "sl1":
            lb = torch.stack([F.smooth_l1_loss(x, t, beta=1 / 9, reduction="sum") / max(1, x.shape[0])
                              for x, t in zip(xs, ts)]).mean()
        else:
            x, t, lv = torch.cat(xs), torch.cat(ts), torch.cat(levels)
            if self.ghmr.per_level:
                chunks = [(x[lv == k].reshape(-1), t[lv == k].reshape(-1), None) for k in range(len(model.level_sizes))]
                chunks = [c for c in chunks if c[0].numel()]
            else:
                chunks = [(x.reshape(-1), t.reshape(-1), None)]
            lb = self.ghmr(chunks, npos * 4) if chunks else reg.sum() * 0
        self.it += 1
        return {"classification": lc, "bbox_regression": lb}

    def record(self, lc, logits, labels, valid):
        """Per region of g = |p - t| (10 regions): element count and the summed |dL/dx|."""
        (g_x,) = torch.autograd.grad(lc, logits, retain_graph=True)
        C = logits.shape[-1]
        with torch.no_grad():
            onehot = F.one_hot(labels.clamp(max=C), C + 1)[..., :C].float()
            g = (torch.sigmoid(logits) - onehot).abs()
            v = valid[..., None].expand_as(g) > 0
            r = torch.clamp((g[v] * REGIONS).long(), max=REGIONS - 1)
            cnt = torch.bincount(r, minlength=REGIONS).tolist()
            gs = torch.bincount(r, weights=g_x[v].abs().double(), minlength=REGIONS).tolist()
            pos = onehot[v] > 0
            gpos = torch.bincount(r[pos], weights=g_x[v][pos].abs().double(), minlength=REGIONS).tolist()
        self.trace.append({"it": self.it, "count": cnt, "grad": [float(f"{v:.4g}") for v in gs],
                           "grad_pos": [float(f"{v:.4g}") for v in gpos]})


# ----------------------------------------------------------------------------- training


def evaluate(model, bed):
    imgs, tgts = make_canvases(bed, "test")
    model.eval()
    dets = []
    with torch.no_grad():
        for i in range(0, len(imgs), 50):
            for o in model(list(imgs[i:i + 50])):
                dets.append((o["boxes"].numpy(), o["scores"].numpy(), o["labels"].numpy()))
    gts = [(t["boxes"].numpy(), t["labels"].numpy()) for t in tgts]
    return {"map50": mean_ap(dets, gts, bed["classes"], 0.5)[0], "map75": mean_ap(dets, gts, bed["classes"], 0.75)[0]}


OPT = {"sgd": dict(lr=0.02, momentum=0.9, weight_decay=1e-4), "adamw": dict(lr=3e-3, weight_decay=1e-4)}


def train(spec, trace=False):
    """spec: dict(bed, cls, box, opt, seed, ghmc={...}, ghmr={...}, warmup=0). Returns metrics."""
    bed = dict(BED[spec.get("bed", "main")])
    bed.update(spec.get("bed_over", {}))
    imgs, tgts = make_canvases(bed, "train")
    t_wall, t_cpu = time.time(), time.process_time()
    model = build_model(bed, spec["seed"])
    loss = BedLoss(spec["cls"], spec["box"], spec.get("ghmc"), spec.get("ghmr"), spec.get("warmup", 0))
    if trace:
        loss.trace = []
    model.bed_loss = loss
    params = [p for p in model.parameters() if p.requires_grad]
    if spec["opt"] == "sgd":
        opt = torch.optim.SGD(params, **OPT["sgd"])
    else:
        opt = torch.optim.AdamW(params, **OPT["adamw"])
    base = [g["lr"] for g in opt.param_groups]
    T, B = bed["iters"], bed["batch"]
    warm = T // 10
    g = torch.Generator().manual_seed(1000 + spec["seed"])
    model.train()
    order = torch.randperm(len(imgs), generator=g)
    pos = 0
    nonfinite = False
    for it in range(T):
        f = (0.1 + 0.9 * it / warm) if it < warm else (1.0 if it < 0.75 * T else (0.1 if it < 0.9 * T else 0.01))
        for gr, b in zip(opt.param_groups, base):
            gr["lr"] = b * f
        if pos + B > len(order):
            order, pos = torch.randperm(len(imgs), generator=g), 0
        idx = order[pos:pos + B]
        pos += B
        losses = model(list(imgs[idx]), [tgts[int(i)] for i in idx])
        total = losses["classification"] + losses["bbox_regression"]
        if not torch.isfinite(total):
            nonfinite = True
            break
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 35.0)
        opt.step()
    res = evaluate(model, bed) if not nonfinite else {"map50": 0.0, "map75": 0.0}
    res.update(cpu_s=round(time.process_time() - t_cpu, 1), wall_s=round(time.time() - t_wall, 1),
               nonfinite=nonfinite, final_cls=float(losses["classification"].detach()), final_box=float(losses["bbox_regression"].detach()))
    if trace:
        res["trace"] = loss.trace
    return res


# ----------------------------------------------------------------------------- ablation plan

GHMC_REF = dict(bins=30, momentum=0.75)
GHMR_REF = dict(bins=10, momentum=0.7, mu=0.02, loss_weight=10.0)
NB, BC, DE = gt.GHM_OPT_NORM_BY_BINS, gt.GHM_OPT_EMA_BIAS_CORRECTION, gt.GHM_OPT_DECAY_EMPTY_BINS


def ghmc(**kw):
    d = dict(GHMC_REF)
    d.update(kw)
    return {"cls": "ghmc", "ghmc": d}


# classification variants (box branch smooth L1)
CLS_VARIANTS = OrderedDict([
    ("BCE", {"cls": "bce"}),
    ("focal", {"cls": "focal"}),
    ("GHM-C ref (per batch)", ghmc()),
    ("GHM-C ref, per FPN level", ghmc(per_level=True)),
    ("momentum 0", ghmc(momentum=0.0)),
    ("bins 10", ghmc(bins=10)),
    ("weight_cap 50", ghmc(cap=50.0)),
    ("EMA bias correction", ghmc(options=BC)),
    ("norm by bins", ghmc(options=NB)),
    ("decay empty bins", ghmc(options=DE)),
    ("all 3 options", ghmc(options=NB | BC | DE)),
    ("scale to positives", ghmc(scale="pos")),
    ("prior 0.1", ghmc(prior=0.1)),
    ("prior 0.1 + scale", ghmc(prior=0.1, scale="pos")),
    ("window 8", ghmc(window=8, momentum=0.0)),
    ("BCE warm-up 1/4", dict(ghmc(), warmup=200)),
])
ALWAYS = ["BCE", "focal", "GHM-C ref (per batch)"]

# box variants (classification focal; "smooth L1" is the focal run itself)
BOX_VARIANTS = OrderedDict([
    ("GHM-R ref (per batch)", {"box": "ghmr", "ghmr": dict(GHMR_REF)}),
    ("GHM-R ref, per FPN level", {"box": "ghmr", "ghmr": dict(GHMR_REF, per_level=True)}),
    ("GHM-R all 3 options", {"box": "ghmr", "ghmr": dict(GHMR_REF, options=NB | BC | DE)}),
])


def spec_of(name, table, opt, seed, bed="main"):
    s = {"bed": bed, "opt": opt, "seed": seed, "cls": "focal", "box": "sl1"}
    s.update(table[name])
    return s


def load_done(path):
    done = {}
    if os.path.exists(path):
        for line in open(path):
            r = json.loads(line)
            done[r["key"]] = r
    return done


def run_and_log(path, done, key, spec, label):
    if key in done:
        return done[key]
    trace = spec["seed"] == 0 and spec["bed"] == "main" and spec["box"] == "sl1"
    res = train(spec, trace=trace)
    tr = res.pop("trace", None)
    rec = {"key": key, "label": label, "spec": spec, **res}
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
    if tr is not None:
        with open(os.path.join(os.path.dirname(path), "traces.jsonl"), "a") as f:
            f.write(json.dumps({"key": key, "label": label, "trace": tr}) + "\n")
    done[key] = rec
    print(f"{time.strftime('%H:%M:%S')} {key}: map50 {res['map50']:.3f} map75 {res['map75']:.3f} "
          f"cpu {res['cpu_s']}s", flush=True)
    return rec


def screen_mean(done, tag, name):
    v = [done[k]["map50"] for k in (f"main|{tag}|{name}|sgd|0", f"main|{tag}|{name}|adamw|0") if k in done]
    return sum(v) / len(v) if len(v) == 2 else -1.0


def ablation(path, stages, finalists=None, n_best=2):
    """screen: every variant on seed 0 with SGD and AdamW; confirm: the finalists (BCE,
    focal, the reference GHM-C, the best n_best other GHM-C variants of the screen and the
    best GHM-R variant) on seeds 1 and 2; second: BCE, focal, reference and the best GHM-C
    variant on the second bed configuration, seeds 0-2."""
    done = load_done(path)
    opts = ("sgd", "adamw")
    if "screen" in stages:
        for name in CLS_VARIANTS:
            for o in opts:
                run_and_log(path, done, f"main|cls|{name}|{o}|0", spec_of(name, CLS_VARIANTS, o, 0), name)
        for name in BOX_VARIANTS:
            for o in opts:
                run_and_log(path, done, f"main|box|{name}|{o}|0", spec_of(name, BOX_VARIANTS, o, 0), name)
    if finalists is None:
        others = sorted((n for n in CLS_VARIANTS if n not in ALWAYS), key=lambda n: -screen_mean(done, "cls", n))
        best_box = max(BOX_VARIANTS, key=lambda n: screen_mean(done, "box", n))
        finalists = ALWAYS + others[:n_best] + [best_box]
    print("finalists:", finalists, flush=True)
    if "confirm" in stages:
        for seed in (1, 2):
            for name in finalists:
                table, tag = (CLS_VARIANTS, "cls") if name in CLS_VARIANTS else (BOX_VARIANTS, "box")
                for o in opts:
                    run_and_log(path, done, f"main|{tag}|{name}|{o}|{seed}", spec_of(name, table, o, seed), name)
    if "second" in stages:
        names = [n for n in finalists if n in CLS_VARIANTS][:4]
        for seed in (0, 1, 2):
            for name in names:
                for o in opts:
                    run_and_log(path, done, f"dense5|cls|{name}|{o}|{seed}",
                                spec_of(name, CLS_VARIANTS, o, seed, "dense5"), name)


def main():
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    one = sub.add_parser("one", help="one run of a named variant")
    one.add_argument("--variant", default="focal")
    one.add_argument("--opt", default="sgd", choices=("sgd", "adamw"))
    one.add_argument("--seed", type=int, default=0)
    one.add_argument("--bed", default="main", choices=sorted(BED))
    one.add_argument("--iters", type=int)
    ab = sub.add_parser("ablation", help="the ablation, appending to a JSONL file (resumes)")
    ab.add_argument("--out", default=os.path.join(HERE, "results", "ablation.jsonl"))
    ab.add_argument("--stages", default="screen,confirm,second")
    ab.add_argument("--finalists", help="comma-separated variant names for confirm/second")
    args = ap.parse_args()
    if args.cmd == "one":
        table = CLS_VARIANTS if args.variant in CLS_VARIANTS else BOX_VARIANTS
        spec = spec_of(args.variant, table, args.opt, args.seed, args.bed)
        if args.iters:
            spec["bed_over"] = {"iters": args.iters}
        print(json.dumps({"spec": spec, **train(spec)}))
    elif args.cmd == "ablation":
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        fin = args.finalists.split(",") if args.finalists else None
        ablation(args.out, args.stages.split(","), fin)


if __name__ == "__main__":
    main()
