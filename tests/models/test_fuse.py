"""Conv+BN folding keeps the network's function (issue 16.3)."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from detforge.models import build_model
from detforge.models.blocks import ConvBNAct
from detforge.models.fuse import fold_batchnorm


def _randomised(name: str, nc: int = 3) -> nn.Module:
    """A model whose BatchNorms hold non-trivial statistics (else folding is nearly a no-op)."""
    torch.manual_seed(0)
    model = build_model(name, nc)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
            m.eps = 1e-3
    return model.eval()


@pytest.mark.parametrize("name", ["yolo-n", "yolo-n-p2"])
def test_folded_model_gives_the_same_maps(name):
    model = _randomised(name)
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        before = model(x)
        n = fold_batchnorm(model)
        after = model(x)
    assert n == sum(isinstance(m, ConvBNAct) for m in model.modules()) > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


def test_folding_a_training_model_is_refused():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(build_model("yolo-n", 2).train())


def test_folded_model_has_fewer_modules_to_run():
    # no timing assertion (CI machines are shared); the measured times are printed for the log
    model = _randomised("yolo-n")
    x = torch.rand(1, 3, 128, 128)
    ref = _randomised("yolo-n")
    fold_batchnorm(model)
    with torch.no_grad():
        for m in (ref, model):
            m(x)
        t0 = time.perf_counter()
        ref(x)
        t1 = time.perf_counter()
        model(x)
        t2 = time.perf_counter()
    print(f"unfolded {1e3 * (t1 - t0):.1f} ms, folded {1e3 * (t2 - t1):.1f} ms")

    def kernels(m: nn.Module) -> int:  # leaf modules that do work
        return sum(
            1 for c in m.modules() if not list(c.children()) and not isinstance(c, nn.Identity)
        )

    assert kernels(model) < kernels(ref)


def test_detector_load_folds_batchnorm_unless_asked_not_to(tiny_args):
    from detforge import Detector, train
    from detforge.config.loader import parse_value

    overrides = {k: parse_value(v) for k, v in (a.split("=", 1) for a in tiny_args)}
    best = train(verbose=False, **{**overrides, "epochs": 1}).run_dir / "weights" / "best.pt"
    fused, plain = Detector.load(best), Detector.load(best, fuse=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.model.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain.model.modules())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(plain.model(x), fused.model(x), strict=True):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
