"""Tests of the installed ghm_torch package (`pip install .`), run by .ci/run:

    .venv/bin/python -m unittest discover -s python/tests -v

- dtypes: the loss is float32 whatever the input dtype (float16, bfloat16, float64, and under
  CPU autocast), the gradient has the input's dtype and the value of the float32 computation;
- configuration errors name the field, the value given and the allowed range, for every field;
- checkpoints load with strict=True both ways between this module and mmdetection 3.3.0's
  GHMC/GHMR, and inside a torchvision model (saved and loaded whole, and a model's weights
  saved before the loss was attached);
- the package imports from any directory without GHM_LIB and loads the library it installed;
- `threads=`: a batch split over threads gives one thread's gradient and EMA bit for bit and
  its loss to rounding, for GHMC (class-index and value targets) and GHMR, and a bad input
  changes nothing.

mmdetection's classes are loaded as python/compare_mmdet.py loads them (unmodified files of
the mmdet 3.3.0 wheel, without mmcv).
"""

import os
import subprocess
import sys
import unittest

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
REPO = os.path.dirname(PYTHON_DIR)

os.environ.setdefault("GHM_TORCH_NO_REGISTER", "1")
import ghm_torch  # noqa: E402


def mmdet_losses():
    sys.path.insert(0, PYTHON_DIR)
    try:
        import compare_mmdet  # loads mmdetection's ghm_loss.py without mmcv
    finally:
        sys.path.remove(PYTHON_DIR)
    return compare_mmdet.MM


def batch(seed, anchors=400, classes=6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(anchors, classes, generator=g) * 3
    labels = torch.randint(0, classes + 1, (anchors,), generator=g)
    weights = (torch.rand(anchors, generator=g) > 0.1).float()
    return x, labels, weights


def reg_batch(seed, n=500):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(n, 4, generator=g)
    return t + torch.randn(n, 4, generator=g) * 0.1, t, (torch.rand(n, 4, generator=g) > 0.2).float()


class Dtypes(unittest.TestCase):
    def check(self, make, call, dtype):
        ref_m, m = make(), make()
        x32, *rest = call.inputs
        xr = x32.to(dtype).float().requires_grad_(True)  # the same values, in float32
        ref = call(ref_m, xr, *rest)
        ref.backward()
        x = x32.to(dtype).requires_grad_(True)
        out = call(m, x, *rest)
        self.assertEqual(out.dtype, torch.float32, f"loss dtype for {dtype}")
        self.assertEqual(out.item(), ref.item())
        out.backward()
        self.assertEqual(x.grad.dtype, dtype)
        self.assertTrue(torch.equal(x.grad, xr.grad.to(dtype)))

    def test_loss_float32_gradient_in_input_dtype(self):
        x, labels, w = batch(1)
        p, t, rw = reg_batch(2)

        class C:
            inputs = (x, labels, w)

            def __call__(self, m, x, labels, w):
                return m(x, labels, w)

        class R:
            inputs = (p, t, rw)

            def __call__(self, m, p, t, w):
                return m(p, t, w)

        for dtype in (torch.float16, torch.bfloat16, torch.float64, torch.float32):
            with self.subTest(loss="GHMC", dtype=dtype):
                self.check(lambda: ghm_torch.GHMC(bins=30, momentum=0.75), C(), dtype)
            with self.subTest(loss="GHMR", dtype=dtype):
                self.check(lambda: ghm_torch.GHMR(mu=0.02, bins=10, momentum=0.7, loss_weight=10.0), R(), dtype)

    def test_reduction_none_is_float32(self):
        x, labels, w = batch(3)
        out = ghm_torch.GHMC()(x.half(), labels, w, reduction_override="none")
        self.assertEqual(out.dtype, torch.float32)
        self.assertEqual(out.shape, x.shape)

    def test_autocast_logits(self):
        x, labels, w = batch(4)
        layer = torch.nn.Linear(6, 6)
        m = ghm_torch.GHMC(bins=30, momentum=0.75)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = layer(x)
            self.assertEqual(logits.dtype, torch.bfloat16)
            loss = m(logits, labels, w)
        self.assertEqual(loss.dtype, torch.float32)
        loss.backward()
        self.assertEqual(layer.weight.grad.dtype, torch.float32)
        self.assertTrue(torch.isfinite(layer.weight.grad).all())


class ConfigErrors(unittest.TestCase):
    CASES = [
        (ghm_torch.GHMC, dict(bins=100), "bins", "1..=64"),
        (ghm_torch.GHMC, dict(bins=0), "bins", "1..=64"),
        (ghm_torch.GHMC, dict(momentum=1.0), "momentum", "[0, 1)"),
        (ghm_torch.GHMC, dict(momentum=-0.1), "momentum", "[0, 1)"),
        (ghm_torch.GHMC, dict(loss_weight=float("inf")), "loss_weight", "finite"),
        (ghm_torch.GHMC, dict(options=64), "options", "GHM_OPT_"),
        (ghm_torch.GHMC, dict(weight_cap=-1.0), "weight_cap", ">= 0"),
        (ghm_torch.GHMC, dict(count_prior=-0.5), "count_prior", ">= 0"),
        (ghm_torch.GHMR, dict(options=ghm_torch.GHM_OPT_NORM_BY_POSITIVES), "options", "GHM-C only"),
        (ghm_torch.GHMR, dict(mu=0.0), "mu", "(0, 1e18]"),
        (ghm_torch.GHMR, dict(bins=65), "bins", "1..=64"),
        (ghm_torch.GHMR, dict(options=ghm_torch.GHM_OPT_PROBABILITY_INPUT), "options", "GHM-C only"),
        (ghm_torch.GHMR, dict(bins=65, momentum=2.0), "bins", "1..=64"),  # the first field
    ]

    def test_each_field_is_named_with_its_value_and_range(self):
        for cls, kw, field, allowed in self.CASES:
            with self.subTest(cls=cls.__name__, kw=kw):
                with self.assertRaises(ValueError) as cm:
                    cls(**kw)
                e = cm.exception
                self.assertIsInstance(e, ghm_torch.GHMConfigError)
                self.assertEqual(e.field, field)
                self.assertEqual(e.value, kw[field])
                self.assertIn(allowed, e.allowed)
                msg = str(e)
                self.assertIn(f"{field} = {kw[field]!r}", msg)
                self.assertIn(e.allowed, msg)

    def test_valid_configs_construct(self):
        ghm_torch.GHMC(bins=64, momentum=0.999)
        ghm_torch.GHMR(mu=1e18, bins=1, momentum=0.0, options=7, weight_cap=50.0)


class Preset(unittest.TestCase):
    def test_robust_preset_is_the_library_preset(self):
        m = ghm_torch.GHMC(preset="robust", loss_weight=2.0)
        c = m._cfg
        self.assertEqual((c.bins, c.options, c.weight_cap), (30, ghm_torch.GHM_OPT_NORM_BY_POSITIVES, 0.0))
        self.assertAlmostEqual(c.momentum, 0.75)
        self.assertAlmostEqual(c.count_prior, 0.1, places=6)
        self.assertEqual(c.loss_weight, 2.0)
        self.assertEqual((m.bins, m.momentum), (30, c.momentum))

    def test_preset_with_its_own_fields_or_unknown_is_refused(self):
        with self.assertRaises(ValueError):
            ghm_torch.GHMC(preset="robust", bins=10)
        with self.assertRaises(ValueError):
            ghm_torch.GHMC(preset="fast")

    def test_robust_preset_normalises_by_positives(self):
        """The loss and gradient of the preset are those of the same settings without
        GHM_OPT_NORM_BY_POSITIVES, times valid elements / positives."""
        g = torch.Generator().manual_seed(3)
        x = torch.randn(400, 6, generator=g) - 2
        lab = torch.where(torch.rand(400, generator=g) < 0.1, torch.randint(0, 6, (400,), generator=g),
                          torch.full((400,), 6))
        robust = ghm_torch.GHMC(preset="robust")
        by_count = ghm_torch.GHMC(bins=30, momentum=0.75, count_prior=0.1)
        a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        la, lb = robust(a, lab), by_count(b, lab)
        la.backward()
        lb.backward()
        ratio = x.numel() / int((lab < 6).sum())
        self.assertAlmostEqual(float(la.detach()) / float(lb.detach()), ratio, places=4)
        self.assertTrue(torch.allclose(a.grad, b.grad * ratio, rtol=1e-5, atol=1e-12))


class Checkpoints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.MM = mmdet_losses()

    def pairs(self):
        return [
            (ghm_torch.GHMC, self.MM.GHMC, dict(bins=30, momentum=0.75),
             lambda s: batch(s), lambda m, b: m(*b)),
            (ghm_torch.GHMC, self.MM.GHMC, dict(), lambda s: batch(s), lambda m, b: m(*b)),
            (ghm_torch.GHMR, self.MM.GHMR, dict(mu=0.02, bins=10, momentum=0.7, loss_weight=10.0),
             lambda s: reg_batch(s), lambda m, b: m(*b)),
        ]

    def test_strict_both_ways_with_mmdetection(self):
        for mine_cls, mm_cls, kw, make, call in self.pairs():
            with self.subTest(cls=mine_cls.__name__, kw=kw):
                mine, mm = mine_cls(**kw), mm_cls(**kw)
                for s in range(3):
                    call(mine, make(s))
                    call(mm, make(s))
                self.assertEqual(set(mine.state_dict()), set(mm.state_dict()))
                # mmdetection's checkpoint into this module, strict
                fresh = mine_cls(**kw)
                fresh.load_state_dict(mm.state_dict(), strict=True)
                if kw.get("momentum", 0) > 0:
                    self.assertTrue(torch.equal(fresh.acc_sum, mm.acc_sum))
                # this module's checkpoint into mmdetection's, strict
                mm2 = mm_cls(**kw)
                mm2.load_state_dict(mine.state_dict(), strict=True)
                for k, v in mine.state_dict().items():
                    self.assertTrue(torch.equal(getattr(mm2, k), v), k)
                # and both continue alike
                a, b = call(fresh, make(9)), call(mm, make(9))
                self.assertLess(abs(a.item() - b.item()), 1e-5 * abs(b.item()) + 1e-12)

    def test_round_trip_through_torch_save(self):
        import io

        m = ghm_torch.GHMC(bins=30, momentum=0.75)
        for s in range(3):
            m(*batch(s))
        buf = io.BytesIO()
        torch.save(m.state_dict(), buf)
        buf.seek(0)
        m2 = ghm_torch.GHMC(bins=30, momentum=0.75)
        m2.load_state_dict(torch.load(buf), strict=True)
        self.assertEqual(m(*batch(7)).item(), m2(*batch(7)).item())
        self.assertTrue(torch.equal(m.acc_sum, m2.acc_sum))

    def test_bias_correction_state_round_trip(self):
        opt = ghm_torch.GHM_OPT_EMA_BIAS_CORRECTION
        m = ghm_torch.GHMC(bins=30, momentum=0.75, options=opt)
        for s in range(3):
            m(*batch(s))
        sd = m.state_dict()
        self.assertIn("ghm_state", sd)
        m2 = ghm_torch.GHMC(bins=30, momentum=0.75, options=opt)
        m2.load_state_dict(sd, strict=True)
        self.assertEqual(bytes(m.state_struct()), bytes(m2.state_struct()))

    def test_state_of_another_layout_falls_back_to_acc_sum(self):
        """A ghm_state saved by an earlier library version (another size) is skipped with a
        warning; the EMA comes from acc_sum. Without acc_sum it is an error."""
        opt = ghm_torch.GHM_OPT_EMA_BIAS_CORRECTION
        m = ghm_torch.GHMC(bins=30, momentum=0.75, options=opt)
        for s in range(2):
            m(*batch(s))
        sd = m.state_dict()
        sd["ghm_state"] = sd["ghm_state"][:-8].clone()  # a shorter, older layout
        m2 = ghm_torch.GHMC(bins=30, momentum=0.75, options=opt)
        with self.assertWarns(UserWarning):
            m2.load_state_dict(sd, strict=True)
        self.assertEqual(list(m2.state_struct().ema), list(m.state_struct().ema))
        del sd["acc_sum"]
        with self.assertRaises(RuntimeError):
            ghm_torch.GHMC(bins=30, momentum=0.75, options=opt).load_state_dict(sd, strict=False)

    def test_wrong_bins_refused(self):
        m = ghm_torch.GHMC(bins=30, momentum=0.75)
        with self.assertRaises(RuntimeError):
            ghm_torch.GHMC(bins=31, momentum=0.75).load_state_dict(m.state_dict())

    def test_torchvision_model_checkpoints(self):
        import torchvision

        def model():
            torch.manual_seed(0)
            return torchvision.models.detection.retinanet_resnet50_fpn(
                weights=None, weights_backbone=None, num_classes=5)

        plain = model().state_dict()  # the model's weights without the loss
        net = model()
        net.head.classification_head.ghm = ghm_torch.GHMC(bins=30, momentum=0.75)
        net.head.classification_head.ghm(*batch(1))
        # weights saved before the loss was attached load with strict=True
        net.load_state_dict(plain, strict=True)
        # the whole model, loss state included, into a fresh one, strict
        sd = net.state_dict()
        self.assertIn("head.classification_head.ghm.acc_sum", sd)
        net2 = model()
        net2.head.classification_head.ghm = ghm_torch.GHMC(bins=30, momentum=0.75)
        net2.load_state_dict(sd, strict=True)
        self.assertTrue(torch.equal(net2.head.classification_head.ghm.acc_sum,
                                    net.head.classification_head.ghm.acc_sum))
        # an unknown key is still refused
        sd["head.classification_head.ghm.bogus"] = torch.zeros(1)
        with self.assertRaises(RuntimeError):
            net2.load_state_dict(sd, strict=True)


class Installed(unittest.TestCase):
    def test_imports_from_anywhere_without_ghm_lib(self):
        env = {k: v for k, v in os.environ.items() if k not in ("GHM_LIB", "PYTHONPATH")}
        code = ("import sysconfig, torch, ghm_torch; l = ghm_torch.load_library(); "
                "print(ghm_torch.__file__); print(l.path); "
                "print(sysconfig.get_paths()['purelib']); print(sysconfig.get_paths()['platlib']); "
                "print(ghm_torch.GHMC()(torch.zeros(3, 2), torch.zeros(3, 2)).item())")
        out = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        module, lib, purelib, platlib, value = out.stdout.split("\n")[:5]
        real = os.path.realpath
        # the module and the library pip installed, not python/ghm_torch.py or target/c/
        self.assertEqual(real(os.path.dirname(module)), real(purelib), module)
        self.assertEqual(real(os.path.dirname(lib)), real(platlib), lib)
        self.assertTrue(os.path.basename(lib).startswith("ghm_torch_lib"), lib)
        float(value)



class Threads(unittest.TestCase):
    def same_run(self, make, inputs, steps=3):
        """Runs `make(1)` and `make(threads)` for 2 and 3 threads over the same batches."""
        for threads in (2, 3):
            one, many = make(1), make(threads)
            for step in range(steps):
                x, *rest = inputs(step)
                x1, xk = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
                l1, lk = one(x1, *rest), many(xk, *rest)
                l1.backward()
                lk.backward()
                what = f"{threads} threads, step {step}"
                self.assertTrue(torch.equal(x1.grad, xk.grad), what)
                self.assertEqual(bytes(one.state_struct()), bytes(many.state_struct()), what)
                self.assertLessEqual(abs(l1.item() - lk.item()), 1e-6 * abs(l1.item()), what)

    def test_ghmc_class_index(self):
        self.same_run(lambda t: ghm_torch.GHMC(bins=30, momentum=0.75, threads=t),
                      lambda step: batch(10 + step, anchors=401, classes=7))

    def test_ghmc_values(self):
        def inputs(step):
            x, labels, weights = batch(20 + step, anchors=301, classes=5)
            onehot = torch.nn.functional.one_hot(labels, 6)[:, :5].float()
            return x, onehot, weights[:, None].expand(-1, 5)
        self.same_run(lambda t: ghm_torch.GHMC(bins=30, momentum=0.75, threads=t), inputs)

    def test_ghmr_with_and_without_broadcast_weights(self):
        self.same_run(lambda t: ghm_torch.GHMR(mu=0.02, bins=10, momentum=0.7, threads=t),
                      lambda step: reg_batch(30 + step))
        self.same_run(lambda t: ghm_torch.GHMR(mu=0.02, bins=10, momentum=0.7, threads=t),
                      lambda step: (lambda p, t, w: (p, t, w[:, :1]))(*reg_batch(40 + step)))

    def test_bad_input_changes_nothing(self):
        m = ghm_torch.GHMC(bins=30, momentum=0.75, threads=2)
        x, labels, weights = batch(50)
        m(x, labels, weights)
        before = bytes(m.state_struct())
        x[300, 2] = float("nan")  # in the second thread's part
        with self.assertRaises(ghm_torch.GHMError):
            m(x, labels, weights)
        self.assertEqual(bytes(m.state_struct()), before)
        # a loss that overflows float is found after the commit (by an apply, or in the sum
        # of the shares): the state is restored, as one thread's call leaves it (momentum,
        # so that a commit would change it)
        x, y = torch.full((8, 3), 100.0), torch.full((8,), 3)  # every target 0: one region
        for threads in (1, 2):
            for loss_weight in (1e38, 1.2e36):  # one share overflows / only their sum does
                m = ghm_torch.GHMC(loss_weight=loss_weight, momentum=0.75, threads=threads)
                before = bytes(m.state_struct())
                with self.assertRaises(ghm_torch.GHMError) as e:
                    m(x, y)
                self.assertEqual(e.exception.status, 11, str(e.exception))  # GHM_ERR_OVERFLOW
                self.assertEqual(bytes(m.state_struct()), before)

    def test_threads_must_be_a_positive_int(self):
        for bad in (0, -1, 1.5, True, "2"):
            with self.assertRaises(ValueError):
                ghm_torch.GHMC(threads=bad)
            with self.assertRaises(ValueError):
                ghm_torch.GHMR(threads=bad)


if __name__ == "__main__":
    unittest.main()
