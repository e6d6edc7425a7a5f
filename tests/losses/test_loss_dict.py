"""LossDictLoss: a model's own mean loss terms under the Stepper's contract (sums x images,
mass = images), so the logged terms are the model's means."""

import torch

from detforge.engine.gradients import GradientClipper
from detforge.engine.stepper import Stepper
from detforge.losses.loss_dict import LossDictLoss


class _OwnLoss(torch.nn.Module):
    """A model that, like torchvision's detectors, returns its loss terms given targets."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, x, targets):
        n = torch.tensor(float(sum(len(t["labels"]) for t in targets)))
        return {"a": self.w * x.mean(), "b": self.w * 0 + n}


def test_terms_are_scaled_by_the_images_and_logged_as_the_model_means():
    loss = LossDictLoss()
    sums, mass = loss.compute({"a": torch.tensor(0.5), "b": torch.tensor(2.0)}, [{}, {}, {}])
    assert float(mass) == 3.0
    assert {k: float(v) for k, v in sums.items()} == {"a": 1.5, "b": 6.0}

    model = _OwnLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    stepper = Stepper(
        model, loss, opt, torch.amp.GradScaler("cuda", enabled=False), GradientClipper("none"),
        None, torch.device("cpu"), None, max_nonfinite=3,
    )  # fmt: skip
    x = torch.ones(2, 3, 4, 4)
    targets = [{"labels": torch.tensor([0, 1])}, {"labels": torch.tensor([1])}]
    terms, m = stepper.forward_backward(x, targets)  # targets reach the model's forward
    assert m == 2.0 and terms == {"a": 2.0, "b": 3.0}
    # gradient of the step: the mean loss x images (2 x d(w * 1)/dw = 2)
    assert float(model.w.grad) == 2.0
