"""The bed's three-phase GHM-C / GHM-R (bed/run.py `Harmonized`) with no variant switched on
equals ghm_torch's GHMC / GHMR (loss, gradient, EMA) over several calls, and its "prior 0.1 +
scale" variant equals the library's robust preset. `python bed/test_harmonized.py`"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
gt = run.gt


def test_plain_equals_module():
    g = torch.Generator().manual_seed(0)
    h, ref = run.Harmonized("c", bins=30, momentum=0.75), gt.GHMC(bins=30, momentum=0.75)
    hr, refr = run.Harmonized("r", bins=10, momentum=0.7, mu=0.02, loss_weight=10.0), gt.GHMR(mu=0.02, bins=10, momentum=0.7, loss_weight=10.0)
    for _ in range(3):
        x = (torch.randn(500, 4, generator=g) * 3).requires_grad_(True)
        lab = torch.randint(0, 6, (500,), generator=g)  # 4, 5: background rows
        w = (torch.rand(500, generator=g) > 0.1).float()
        x2 = x.detach().clone().requires_grad_(True)
        a = h([(x, lab, w)], 10)
        b = ref(x2, lab, w)
        a.backward()
        b.backward()
        assert torch.allclose(a, b, rtol=1e-6) and torch.allclose(x.grad, x2.grad, rtol=1e-5, atol=1e-12)
        p = (torch.randn(300, generator=g)).requires_grad_(True)
        t = torch.randn(300, generator=g)
        p2 = p.detach().clone().requires_grad_(True)
        a, b = hr([(p, t, None)], 0), refr(p2, t)
        a.backward()
        b.backward()
        assert torch.allclose(a, b, rtol=1e-6) and torch.allclose(p.grad, p2.grad, rtol=1e-5, atol=1e-12)
    assert list(h.state.ema) == list(ref.state_struct().ema)


def test_prior_changes_weights():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(400, 3, generator=g).requires_grad_(True)
    lab = torch.randint(0, 4, (400,), generator=g)
    w = torch.ones(400)
    x2 = x.detach().clone().requires_grad_(True)
    run.Harmonized("c", bins=30, momentum=0.0)([(x, lab, w)], 1).backward()
    run.Harmonized("c", bins=30, momentum=0.0, prior=1.0)([(x2, lab, w)], 1).backward()
    # with momentum 0 the density of a region is its count, plus the prior n/M in the second
    p = torch.sigmoid(x.detach())
    t = torch.nn.functional.one_hot(lab, 4)[:, :3].float()
    gn = (p - t).abs()
    k = torch.clamp((gn * 30).long(), max=29)
    cnt = torch.bincount(k.reshape(-1), minlength=30).double()
    want = (p - t).double() / (cnt[k] + 1200 / 30) / 30
    assert torch.allclose(x2.grad.double(), want, rtol=1e-4, atol=1e-12)
    assert not torch.allclose(x.grad, x2.grad)


def test_prior_and_scale_variant_is_the_robust_preset():
    """The ablation's "prior 0.1 + scale" variant (the bed adds the prior to the stats and
    scales by valid/positives itself) equals the library's preset, GHMC(preset="robust"),
    loss, gradient and EMA, over several batches with an ignore band (weight 0)."""
    g = torch.Generator().manual_seed(2)
    h, ref = run.Harmonized("c", bins=30, momentum=0.75, prior=0.1, scale="pos"), gt.GHMC(preset="robust")
    C = 5
    for _ in range(4):
        x = (torch.randn(600, C, generator=g) * 2 - 3).requires_grad_(True)
        lab = torch.where(torch.rand(600, generator=g) < 0.05, torch.randint(0, C, (600,), generator=g),
                          torch.full((600,), C))
        w = (torch.rand(600, generator=g) > 0.1).float()
        npos = int(((lab < C) & (w > 0)).sum())
        x2 = x.detach().clone().requires_grad_(True)
        a, b = h([(x, lab, w)], npos), ref(x2, lab, w)
        a.backward()
        b.backward()
        assert abs(float(a.detach()) - float(b.detach())) <= 1e-5 * abs(float(b.detach())), (a, b)
        assert torch.allclose(x.grad, x2.grad, rtol=1e-5, atol=1e-12)
    ema = torch.tensor(list(ref.state_struct().ema))
    assert torch.allclose(torch.tensor(list(h.state.ema)), ema, rtol=1e-6)


if __name__ == "__main__":
    torch.set_num_threads(1)
    test_plain_equals_module()
    test_prior_changes_weights()
    test_prior_and_scale_variant_is_the_robust_preset()
    print("ok")
