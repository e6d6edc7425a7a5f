"""The classification loss: equal to PyTorch's cross-entropy where they overlap; soft targets,
smoothing and class weights act as documented."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from detforge.losses.classifier import ClassifierLoss


def test_matches_cross_entropy_with_and_without_smoothing():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 0])
    for smoothing in (0.0, 0.1):
        ours = ClassifierLoss(4, smoothing)(logits, labels)["cls"]
        ref = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        torch.testing.assert_close(ours, ref)


def test_sums_and_mass_for_the_stepper():
    logits, labels = torch.zeros(3, 2), torch.tensor([0, 1, 1])
    sums, mass = ClassifierLoss(2).compute(logits, labels)
    assert float(mass) == 3
    torch.testing.assert_close(sums["cls"], torch.tensor(3 * 0.6931472))


def test_soft_targets_mix_the_two_classes_losses():
    torch.manual_seed(1)
    logits = torch.randn(1, 3)
    loss = ClassifierLoss(3)
    a, b = loss(logits, torch.tensor([0]))["cls"], loss(logits, torch.tensor([2]))["cls"]
    soft = loss(logits, torch.tensor([[0.7, 0.0, 0.3]]))["cls"]
    torch.testing.assert_close(soft, 0.7 * a + 0.3 * b)


def test_class_weights_scale_each_images_loss():
    logits, labels = torch.zeros(2, 2), torch.tensor([0, 1])
    plain = ClassifierLoss(2).compute(logits, labels)[0]["cls"]
    weighted = ClassifierLoss(2, class_weights=[1.0, 3.0]).compute(logits, labels)[0]["cls"]
    torch.testing.assert_close(weighted, plain * 2)  # (1 + 3) / 2 = 2 x the mean weight 1
    with pytest.raises(ValueError, match="2 non-negative numbers"):
        ClassifierLoss(2, class_weights=[1.0])
    with pytest.raises(ValueError, match="label_smoothing"):
        ClassifierLoss(2, label_smoothing=1.0)
