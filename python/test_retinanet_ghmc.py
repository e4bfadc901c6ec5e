"""Tests of ghm_torch.RetinaNetGHMC on a tiny randomly initialised torchvision RetinaNet.

No downloads, a few seconds on one CPU core. Run with pytest, or as a script:

    python python/test_retinanet_ghmc.py

Checks: the EMA steps once per batch (not once per image), anchors in the matcher's ignore
band (-2) are masked (no gradient, not in the histogram), and the loss and gradient equal an
independent computation of GHM-C from the matched anchors.
"""

import math
import os
import sys
from collections import OrderedDict

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("GHM_TORCH_NO_REGISTER", "1")
import ghm_torch  # noqa: E402

from torchvision.models.detection import RetinaNet  # noqa: E402
from torchvision.models.detection.anchor_utils import AnchorGenerator  # noqa: E402
from torchvision.ops import boxes as box_ops  # noqa: E402

BINS, MOMENTUM, C = 30, 0.75, 3


class TinyBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.out_channels = 8
        self.c1 = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.c3 = nn.Conv2d(8, 8, 3, stride=2, padding=1)

    def forward(self, x):
        a = torch.relu(self.c2(torch.relu(self.c1(x))))
        return OrderedDict([("0", a), ("1", torch.relu(self.c3(a)))])


def tiny_model(seed=0):
    torch.manual_seed(seed)
    anchors = AnchorGenerator(sizes=((6, 9), (12, 18)), aspect_ratios=((0.5, 1.0, 2.0),) * 2)
    return RetinaNet(TinyBackbone(), num_classes=C, min_size=32, max_size=32, image_mean=[0.5],
                     image_std=[0.5], anchor_generator=anchors)


def batch(seed):
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(1, 32, 32, generator=g) for _ in range(3)]
    targets = [
        {"boxes": torch.tensor([[4.0, 5.0, 14.0, 16.0], [18.0, 2.0, 30.0, 20.0]]), "labels": torch.tensor([2, 0])},
        {"boxes": torch.tensor([[9.0, 9.0, 20.0, 21.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},  # no object
    ]
    return images, targets


def captured_inputs(model, images, targets):
    """The head outputs and matched indices torchvision hands to the classification head."""
    seen = {}
    head = model.head.classification_head
    inner = head.compute_loss

    def spy(t, head_outputs, matched_idxs):
        head_outputs["cls_logits"].retain_grad()
        seen["logits"] = head_outputs["cls_logits"]
        seen["matched"] = [m.clone() for m in matched_idxs]
        return inner(t, head_outputs, matched_idxs)

    head.compute_loss = spy
    losses = model(images, targets)
    head.compute_loss = inner
    return losses, seen


def reference_ghmc(logits, matched, targets, ema):
    """GHM-C of one batch computed from scratch: returns (loss, grad, new ema, counts)."""
    x = logits.detach().double().reshape(-1, C)
    t = torch.zeros_like(x)
    valid = []
    row = 0
    for m, tgt in zip(matched, targets):
        for a, j in enumerate(m.tolist()):
            if j >= 0:
                t[row + a, int(tgt["labels"][j])] = 1.0
            valid.append(j != -2)
        row += m.numel()
    valid = torch.tensor(valid)
    p = torch.sigmoid(x)
    g = (p - t).abs()
    edges = torch.arange(BINS + 1).float() / BINS
    edges[-1] += 1e-6
    gf = g.float()
    bin_of = torch.full(g.shape, -1, dtype=torch.long)
    for k in range(BINS):
        bin_of[(gf >= edges[k]) & (gf < edges[k + 1])] = k
    vm = valid[:, None].expand_as(x)
    counts = torch.tensor([float(((bin_of == k) & vm).sum()) for k in range(BINS)], dtype=torch.float64)
    new_ema = ema.clone()
    for k in range(BINS):
        if counts[k] > 0:
            new_ema[k] = MOMENTUM * ema[k] + (1 - MOMENTUM) * counts[k]
    n = int((counts > 0).sum())
    dens = new_ema[bin_of.clamp(min=0)]
    term = torch.clamp(x, min=0) - x * t + torch.log1p(torch.exp(-x.abs()))
    w = torch.where(vm, 1.0 / (dens * n), torch.zeros_like(x))
    return float((w * term).sum()), (w * (p - t)).reshape(logits.shape), new_ema, counts


def test_one_ema_step_per_batch_ignore_band_and_value():
    model = tiny_model()
    model.train()
    loss = ghm_torch.RetinaNetGHMC.install(model, ghm_torch.GHMC(bins=BINS, momentum=MOMENTUM))
    assert model.head.classification_head.compute_loss == loss.forward
    # the EMA travels with the model: the state dict carries the loss's acc_sum
    assert "head.classification_head.ghm_loss.ghmc.acc_sum" in model.state_dict()
    ema = torch.zeros(BINS, dtype=torch.float64)
    for step in range(2):
        images, targets = batch(step)
        model.zero_grad()
        losses, seen = captured_inputs(model, images, targets)
        matched = seen["matched"]
        flat = torch.cat(matched)
        assert (flat >= 0).any() and (flat == -1).any(), "the test batch needs foreground and background"
        assert (flat == -2).any(), "the test batch needs anchors in the ignore band"
        ref_loss, ref_grad, ema, counts = reference_ghmc(seen["logits"], matched, targets, ema)
        # the histogram counts every class of every non-ignored anchor, and nothing else
        assert counts.sum() == C * int((flat != -2).sum())
        got = float(losses["classification"].detach())
        assert math.isclose(got, ref_loss, rel_tol=1e-5), (got, ref_loss)
        # one EMA step per batch: the state equals one update from the whole batch's counts
        state = torch.tensor(list(model.head.classification_head.ghm_loss.ghmc.acc_sum), dtype=torch.float64)
        assert torch.allclose(state, ema, rtol=1e-6, atol=1e-6), (state, ema)
        losses["classification"].backward()
        grad = seen["logits"].grad.double()
        assert torch.allclose(grad, ref_grad, rtol=1e-4, atol=1e-9)
        ignored = (torch.stack(matched) == -2)
        assert ignored.any() and grad[ignored].abs().max() == 0
        assert grad[~ignored].abs().max() > 0


def test_per_image_calls_would_differ():
    """The reason for the recipe: stepping the EMA once per image gives another state."""
    model = tiny_model()
    model.train()
    images, targets = batch(0)
    _, seen = captured_inputs(model, images, targets)
    batched = ghm_torch.GHMC(bins=BINS, momentum=MOMENTUM)
    per_image = ghm_torch.GHMC(bins=BINS, momentum=MOMENTUM)
    rt = ghm_torch.RetinaNetGHMC(batched)
    rt(targets, {"cls_logits": seen["logits"].detach()}, seen["matched"])
    for i in range(len(images)):
        lab, w = rt.batch_targets(targets[i:i + 1], seen["matched"][i:i + 1], C)
        per_image(seen["logits"][i].detach(), lab, w)
    assert not torch.allclose(batched.acc_sum, per_image.acc_sum)


def test_ignore_is_not_background():
    """Taking the ignore band (-2) as background (-1) changes the histogram and gives those
    anchors a gradient; the recipe does neither."""
    model = tiny_model()
    model.train()
    images, targets = batch(0)
    _, seen = captured_inputs(model, images, targets)
    res = []
    for matched in (seen["matched"], [torch.where(m == -2, torch.full_like(m, -1), m) for m in seen["matched"]]):
        logits = seen["logits"].detach().clone().requires_grad_(True)
        rt = ghm_torch.RetinaNetGHMC(ghm_torch.GHMC(bins=BINS, momentum=MOMENTUM))
        rt(targets, {"cls_logits": logits}, matched).backward()
        res.append((rt.ghmc.acc_sum, logits.grad))
    ignored = torch.stack(seen["matched"]) == -2
    assert res[0][1][ignored].abs().max() == 0 and res[1][1][ignored].abs().max() > 0
    assert res[0][0].sum() < res[1][0].sum()


def test_label_out_of_range_is_refused():
    model = tiny_model()
    images, targets = batch(0)
    _, seen = captured_inputs(model, images, targets)
    bad = [dict(t) for t in targets]
    bad[0] = {"boxes": targets[0]["boxes"], "labels": torch.tensor([C, 0])}
    rt = ghm_torch.RetinaNetGHMC(ghm_torch.GHMC(bins=BINS, momentum=MOMENTUM))
    try:
        rt(bad, {"cls_logits": seen["logits"].detach()}, seen["matched"])
    except ValueError:
        return
    raise AssertionError("a foreground label >= C was accepted")


if __name__ == "__main__":
    torch.set_num_threads(1)
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_")]
    for f in tests:
        f()
        print(f"ok  {f.__name__}")
    print(f"{len(tests)} tests passed")
