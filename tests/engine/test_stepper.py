"""The optimizer-step contract on a toy model: exact accumulation, skipped non-finite steps
(plain and under the fp16 GradScaler), rolled-back BatchNorm statistics and the EMA."""

import pytest
import torch
from torch import nn

from detforge.engine.ema import ModelEMA
from detforge.engine.gradients import GradientClipper
from detforge.engine.stepper import Stepper


class Toy(nn.Module):
    """Returns a list of maps, as the detector does; BatchNorm optional."""

    def __init__(self, bn: bool):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 1)
        self.bn = nn.BatchNorm2d(4) if bn else nn.Identity()

    def forward(self, x):
        return [self.bn(self.conv(x))]


class ToyLoss:
    """Sums over images (so windows add up) and a target mass of one per target row."""

    def __init__(self):
        self.poison = None  # a factor multiplied into the loss (nan / inf to break a step)

    def compute(self, outputs, targets):
        total = (outputs[0] - 0.5).pow(2).sum()
        if self.poison is not None:
            total = total * self.poison
        return {"sq": total}, torch.tensor(float(len(targets)))


def _stepper(model, scaler=None, ema=None, max_nonfinite=3):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = scaler or torch.amp.GradScaler("cpu", enabled=False)
    return Stepper(
        model, ToyLoss(), opt, scaler, GradientClipper("none"), ema, torch.device("cpu"),
        None, max_nonfinite,
    )  # fmt: skip


def _batch(seed, n_img, n_tgt):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n_img, 3, 4, 4, generator=g), torch.rand(n_tgt, 6, generator=g)


def test_accumulated_window_equals_one_big_batch():
    (xa, ta), (xb, tb) = _batch(1, 2, 3), _batch(2, 3, 1)
    acc = _stepper(Toy(bn=False))
    for x, t, last in ((xa, ta, False), (xb, tb, True)):
        _, mass = acc.forward_backward(x, t, sync=last)
    acc.step(3.0 + 1.0, 5, 0)
    big = _stepper(Toy(bn=False))
    big.forward_backward(torch.cat([xa, xb]), torch.cat([ta, tb]))
    big.step(4.0, 5, 0)
    for p, q in zip(acc.model.parameters(), big.model.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)
    assert not torch.allclose(acc.model.conv.weight, Toy(bn=False).conv.weight)


def _nonfinite_step(stepper, poison):
    x, t = _batch(3, 2, 2)
    stepper.save_buffers()
    stepper.loss_fn.poison = poison
    stepper.forward_backward(x, t)
    return stepper.step(2.0, 2, 0)


@pytest.mark.parametrize("fp16", [False, True])
def test_nonfinite_step_is_skipped_rolled_back_and_counted(fp16):
    model = Toy(bn=True)
    ema = ModelEMA(model, 0.9, 1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10) if fp16 else None
    stepper = _stepper(model, scaler, ema, max_nonfinite=2)
    weights = model.conv.weight.detach().clone()
    stats = model.bn.running_mean.clone()
    norm, finite = _nonfinite_step(stepper, float("inf") if fp16 else float("nan"))
    assert not finite
    assert stepper.skipped_steps == 1 and stepper.nonfinite_run == 1
    assert ema.updates == 0  # the EMA does not average a step that did not happen
    assert torch.equal(model.conv.weight, weights)
    assert torch.equal(model.bn.running_mean, stats)  # the poisoned forward is rolled back
    if fp16:
        assert stepper.scaler.get_scale() == 2.0**9  # the scaler backed off
    # a finite step resets the run, and is counted as finite
    stepper.loss_fn.poison = None
    stepper.save_buffers()
    stepper.forward_backward(*_batch(4, 2, 2))
    assert stepper.step(2.0, 2, 1)[1] and stepper.nonfinite_run == 0 and ema.updates == 1
    # max_nonfinite consecutive ones stop training
    _nonfinite_step(stepper, float("inf") if fp16 else float("nan"))
    with pytest.raises(FloatingPointError, match="2 consecutive non-finite steps"):
        _nonfinite_step(stepper, float("inf") if fp16 else float("nan"))
    assert stepper.skipped_steps == 3
