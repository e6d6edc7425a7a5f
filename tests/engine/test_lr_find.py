"""lr range test on a tiny synthetic problem, and its plot."""

import math

import numpy as np
import pytest
import torch

from detforge.data.dataset import YoloDataset
from detforge.data.datayaml import load_data_yaml
from detforge.data.loader import build_dataloader
from detforge.engine.gradients import GradientClipper
from detforge.engine.lr_find import LRFindResult, lr_range_test, plot_lr_find, suggest_lr
from detforge.engine.optim import build_optimizer
from detforge.losses import DetectionLoss
from detforge.models import build_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_bytes=5_000):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > min_bytes
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 400 and height >= 300


@pytest.fixture
def problem(tiny_data, tmp_path):
    torch.manual_seed(0)
    spec = load_data_yaml(tiny_data)
    ds = YoloDataset.from_spec(spec, "train", imgsz=64, augment=False, cache_dir=tmp_path)
    loader = build_dataloader(ds, batch_size=4, shuffle=True, workers=0, seed=0)
    model = build_model("yolo-n", len(spec.names))
    loss_fn = DetectionLoss(model.nc, model.strides, model.reg_max)
    opt = build_optimizer(model, "sgd", 0.01, momentum=0.9)
    return model, loss_fn, loader, opt


def test_lr_range_test_sweeps_and_restores_everything(problem, tmp_path):
    model, loss_fn, loader, opt = problem
    model.eval()  # the mode must come back too
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_before = [dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups]
    rng = torch.get_rng_state()
    iters = 20  # 4 batches per epoch: the loader is cycled
    res = lr_range_test(
        model, loss_fn, loader, opt, start_lr=1e-5, end_lr=1.0, iters=iters, device="cpu",
        clipper=GradientClipper("norm", 10.0),
    )  # fmt: skip
    n = len(res.lrs)
    assert 3 <= n <= iters and len(res.losses) == len(res.smoothed) == n
    assert res.stopped_early == (n < iters)
    assert math.isclose(res.lrs[0], 1e-5)
    assert all(b > a for a, b in zip(res.lrs, res.lrs[1:], strict=False))
    ratios = np.diff(np.log(res.lrs))
    assert np.allclose(ratios, math.log(1e5) / (iters - 1))  # exponential sweep
    if n == iters:
        assert math.isclose(res.lrs[-1], 1.0)
    assert all(math.isfinite(v) for v in res.losses + res.smoothed)
    assert res.suggestion is not None and res.lrs[1] <= res.suggestion <= res.lrs[-2]
    assert res.suggestion in res.lrs
    # training really happened (the loss moved) and left no trace
    assert len(set(res.losses)) > 1
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training
    assert [
        dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups
    ] == opt_before
    assert len(opt.state) == 0  # no momentum buffers left behind
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters())

    png = plot_lr_find(res, tmp_path / "plots" / "lr_find.png")
    assert_png(png)


def test_suggestion_is_steepest_descent_and_smoothing_is_bias_corrected():
    lrs = list(np.logspace(-6, 0, 30))
    # flat, then a steep fall around lr 1e-3, then up again
    smoothed = [2.0 - 1.5 / (1 + math.exp(-4 * (math.log10(x) + 3))) for x in lrs]
    smoothed[-5:] = [1.0, 1.5, 2.5, 4.0, 6.0]
    s = suggest_lr(lrs, smoothed)
    assert 5e-4 < s < 2e-3
    assert suggest_lr(lrs[:4], smoothed[:4]) is None


def test_lr_range_test_stops_at_divergence():
    class Quadratic(torch.nn.Module):
        """One weight; loss (w - 3)^2 explodes once lr > 1 (each step multiplies the error)."""

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return [self.w.expand(x.shape[0]).reshape(-1, 1, 1, 1)]

    class Loss:
        """Summed over images with a target mass of one per image, as the Stepper expects."""

        def compute(self, outputs, targets):
            out = outputs[0]
            return {"sq": ((out - 3.0) ** 2).sum()}, torch.tensor(float(out.shape[0]))

    loss_fn = Loss()

    batch = {"img": torch.zeros(1, 3, 2, 2, dtype=torch.uint8), "targets": torch.zeros(0, 6)}
    model = Quadratic()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = lr_range_test(
        model, loss_fn, [batch], opt, start_lr=1e-3, end_lr=100.0, iters=60, smooth=0.5
    )
    assert res.stopped_early and len(res.lrs) < 60
    assert res.smoothed[-1] > 4.0 * min(res.smoothed)
    first = 9.0  # bias correction: the first smoothed value is the first loss, not 0.02 of it
    assert res.losses[0] == res.smoothed[0] == first
    assert res.suggestion is not None and res.suggestion < 1.0
    assert model.w.item() == 0.0
    # accumulate: each step sums the gradients of that many batches
    seen = []

    class Counting:
        def __iter__(self):
            seen.append(1)
            return iter([batch])

    res = lr_range_test(model, loss_fn, Counting(), opt, start_lr=1e-3, end_lr=1e-2, iters=5,
                        accumulate=3)  # fmt: skip
    assert len(res.lrs) == 5 and len(seen) == 15 and res.losses[0] == 9.0
    assert math.isclose(res.losses[1], (3 * 6 * 1e-3 - 3.0) ** 2, rel_tol=1e-6)  # 3 grads summed
    with pytest.raises(ValueError, match="start_lr"):
        lr_range_test(model, loss_fn, [batch], opt, start_lr=1.0, end_lr=0.1)


def test_result_defaults():
    assert LRFindResult().suggestion is None
