"""The classification validator scores a model's predictions on a loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from detforge.eval.classify_validator import ClassifyValidator
from detforge.losses.classifier import ClassifierLoss


class MeanColour(nn.Module):
    """Class 0 for dark images, 1 for bright ones (a hand-built classifier)."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5], dim=1) * 10


class Split:
    def __init__(self, n):
        self.files = [f"img{i}.png" for i in range(n)]


def test_validator_metrics_losses_and_hardest_mistakes():
    # 4 dark images labelled 0, 2 bright labelled 1, one bright labelled 0 (a mistake)
    values = [20, 30, 40, 50, 200, 220, 250]
    labels = [0, 0, 0, 0, 1, 1, 0]
    imgs = torch.stack([torch.full((3, 8, 8), v, dtype=torch.uint8) for v in values])
    loader = [{"img": imgs[:4], "cls": torch.tensor(labels[:4])},
              {"img": imgs[4:], "cls": torch.tensor(labels[4:])}]  # fmt: skip
    ds = type("DS", (), {"split": Split(7)})()
    v = ClassifyValidator(ds, loader, ["dark", "bright"], torch.device("cpu"))
    res = v.run(MeanColour(), ClassifierLoss(2))
    m = res.metrics
    assert m["top1"] == pytest.approx(6 / 7)
    assert m["balanced_accuracy"] == pytest.approx((4 / 5 + 1) / 2)
    assert res.detail.confusion.tolist() == [[4, 1], [0, 2]]
    assert res.hardest() == [{"file": "img6.png", "true": "dark", "predicted": "bright",
                              "score": pytest.approx(res.probs[6, 1])}]  # fmt: skip
    logits = MeanColour()(imgs.float() / 255)
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(labels))
    assert res.losses["cls"] == pytest.approx(float(expected), rel=1e-5)
    assert np.allclose(res.probs.sum(1), 1)
