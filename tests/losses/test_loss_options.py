"""Classification loss options: focal, label smoothing, class weights; assigner arguments."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from detforge.assign import TaskAlignedAssigner
from detforge.config.fields import ConfigError
from detforge.config.schema import LossSection
from detforge.losses import (
    ClassificationLoss,
    DetectionLoss,
    class_weights_from_labels,
    loss_kwargs_from_config,
    resolve_class_weights,
)
from detforge.losses.classification import focal_bce_with_logits, smooth_targets

STRIDES = (8, 16, 32)


def _soft_problem(seed=0, b=2, n=30, k=3):
    """Random logits (B, N, K) and IoU-aware targets: one class per fg anchor, bg rows zero."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, n, k, generator=g) * 3
    fg = torch.rand(b, n, generator=g) < 0.4
    cls = torch.randint(0, k, (b, n), generator=g)
    scores = torch.rand(b, n, generator=g) * 0.9 + 0.05
    targets = F.one_hot(cls, k).float() * (scores * fg)[..., None]
    return logits, targets, fg


def _raw_outputs(seed=0, nc=3, size=64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 64 + nc, size // s, size // s, generator=g) for s in STRIDES]


def _targets():
    return torch.tensor(
        [[0, 1, 4.0, 6.0, 40.0, 50.0], [0, 0, 30.0, 20.0, 60.0, 60.0], [1, 2, 8.0, 8.0, 56.0, 40.0]]
    )


# ------------------------------------------------------------------ focal loss


def test_focal_with_gamma_0_and_no_alpha_is_bce():
    logits, targets, _ = _soft_problem()
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    assert torch.equal(focal_bce_with_logits(logits, targets, gamma=0.0, alpha=None), bce)
    focal = ClassificationLoss(3, "focal", gamma=0.0, alpha=None)
    assert focal(logits, targets) == pytest.approx(ClassificationLoss(3)(logits, targets).item())


def test_focal_down_weights_easy_examples_more_than_hard_ones():
    t = torch.tensor([1.0, 1.0, 0.0, 0.0])
    x = torch.tensor([4.0, -2.0, -4.0, 2.0])  # easy pos, hard pos, easy neg, hard neg
    ratio = focal_bce_with_logits(x, t, 2.0) / F.binary_cross_entropy_with_logits(
        x, t, reduction="none"
    )
    assert torch.allclose(ratio, (t - x.sigmoid()).abs() ** 2)  # (1 - p_t) ** gamma for 0/1
    assert ratio[0] < 1e-3 and ratio[2] < 1e-3 and ratio[1] > 0.7 and ratio[3] > 0.7


def test_focal_alpha_weights_positive_and_negative_parts():
    x = torch.tensor([0.3, -1.2])
    t = torch.tensor([1.0, 0.0])
    bce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    got = focal_bce_with_logits(x, t, gamma=0.0, alpha=0.25)
    assert torch.allclose(got, torch.tensor([0.25, 0.75]) * bce)


def test_focal_on_soft_targets_is_minimal_at_the_target():
    # |t - p| ** gamma keeps the optimum at p = t (the IoU); (1 - p_t) ** gamma would not
    t = torch.tensor([0.2, 0.5, 0.8])
    x = torch.logit(t).requires_grad_(True)
    focal_bce_with_logits(x, t, gamma=2.0).sum().backward()
    assert torch.allclose(x.grad, torch.zeros(3), atol=1e-6)
    xs = torch.logit(t) + torch.tensor([[-0.3], [0.3]])  # either side of the target
    at = focal_bce_with_logits(torch.logit(t), t, 2.0)
    assert (focal_bce_with_logits(xs, t.expand(2, 3), 2.0) > at).all()


def test_focal_changes_detection_cls_loss_with_finite_gradients():
    outs = [o.requires_grad_(True) for o in _raw_outputs()]
    bce = DetectionLoss(3, STRIDES)(outs, _targets())
    focal = DetectionLoss(3, STRIDES, cls_loss="focal", focal_gamma=2.0, focal_alpha=0.25)
    terms = focal(outs, _targets())
    assert terms["cls"].item() < 0.5 * bce["cls"].item()
    assert terms["box"].item() == pytest.approx(bce["box"].item())
    terms["cls"].backward()
    assert all(torch.isfinite(o.grad).all() for o in outs)


# ------------------------------------------------------------------ label smoothing


def test_smooth_targets_exact_values_foreground_only():
    t = torch.tensor([[[0.0, 0.8, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    fg = torch.tensor([[True, False]])
    s = smooth_targets(t, 0.1, fg)
    assert torch.allclose(s[0, 0], torch.tensor([0.025, 0.745, 0.025, 0.025]))
    assert torch.equal(s[0, 1], torch.zeros(4))  # background stays 0
    assert smooth_targets(t, 0.0, fg) is t


def test_label_smoothing_changes_loss_and_gradient():
    logits, targets, fg = _soft_problem()
    plain, smooth = ClassificationLoss(3), ClassificationLoss(3, label_smoothing=0.2)
    x = logits.clone().requires_grad_(True)
    smooth(x, targets, fg).backward()
    expect = targets * 0.8 + 0.2 / 3
    expect = torch.where(fg[..., None], expect, targets)
    assert torch.allclose(x.grad, logits.sigmoid() - expect, atol=1e-6)  # d BCE / dx = p - t'
    assert smooth(logits, targets, fg).item() != pytest.approx(plain(logits, targets, fg).item())


def test_detection_loss_uses_smoothed_targets():
    outs = _raw_outputs()
    loss = DetectionLoss(3, STRIDES, label_smoothing=0.1)
    seen = {}
    loss.cls_term.register_forward_pre_hook(lambda m, args: seen.update(args=args))
    terms = loss(outs, _targets())
    logits, targets, fg = seen["args"]
    assert fg.any() and (~fg).any()
    norm = targets.sum().clamp(min=1)
    t = torch.where(fg[..., None], targets * 0.9 + 0.1 / 3, targets)
    expect = F.binary_cross_entropy_with_logits(logits, t, reduction="sum") / norm * 0.5
    assert terms["cls"].item() == pytest.approx(expect.item(), rel=1e-5)
    plain = DetectionLoss(3, STRIDES)(outs, _targets())
    assert abs(terms["cls"].item() - plain["cls"].item()) > 1e-3  # background dominates here
    assert terms["box"].item() == pytest.approx(plain["box"].item())


# ------------------------------------------------------------------ class weights


def test_auto_class_weights_inverse_frequency_mean_one():
    labels = [
        np.array([[0, 0.5, 0.5, 0.1, 0.1]] * 4 + [[1, 0.5, 0.5, 0.1, 0.1]], np.float32),
        np.zeros((0, 5), np.float32),
        np.array([[0, 0.2, 0.2, 0.1, 0.1]] * 2 + [[1, 0.5, 0.5, 0.1, 0.1], [3, 0, 0, 1, 1]]),
    ]
    w = class_weights_from_labels(labels, 4)  # counts 6, 2, 0, 1
    inv = torch.tensor([1 / 6, 1 / 2, 1.0])
    assert torch.allclose(w[[0, 1, 3]], inv / inv.mean())
    assert w[[0, 1, 3]].mean().item() == pytest.approx(1.0) and w[2] == 1.0  # absent class: 1
    assert w.dtype == torch.float32
    assert torch.equal(class_weights_from_labels([], 3), torch.ones(3))
    with pytest.raises(ValueError, match="class ids"):
        class_weights_from_labels([np.array([[5, 0, 0, 1, 1]])], 4)


def test_class_weights_scale_each_class_column():
    logits, targets, fg = _soft_problem()
    per_class = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum((0, 1))
    weighted = ClassificationLoss(3, class_weights=[2.0, 0.0, 1.0])(logits, targets, fg)
    assert weighted.item() == pytest.approx((2 * per_class[0] + per_class[2]).item(), rel=1e-6)
    focal = ClassificationLoss(3, "focal", alpha=None, class_weights=[0.0, 3.0, 0.0])
    col1 = focal_bce_with_logits(logits, targets, 2.0)[..., 1].sum()
    assert focal(logits, targets, fg).item() == pytest.approx(3 * col1.item(), rel=1e-6)


@pytest.mark.parametrize(
    "value, message",
    [
        ([1.0, 2.0], r"loss.cls_weights: 2 weights for 3 classes"),
        ("inverse", r"loss.cls_weights: 'inverse' is neither 'auto'"),
        ("auto", r"loss.cls_weights: 'auto' needs the training labels"),
        ([1.0, -1.0, 1.0], r"loss.cls_weights: .*>= 0"),
    ],
)
def test_class_weight_errors_name_the_key(value, message):
    with pytest.raises(ConfigError, match=message):
        DetectionLoss(3, STRIDES, cls_weights=value)
    with pytest.raises(ConfigError, match=message):
        resolve_class_weights(value, 3)


# ------------------------------------------------------------------ constructor and adapter


def test_assigner_arguments_pass_through_the_constructor():
    loss = DetectionLoss(3, STRIDES, iou_kind="giou", topk=7, alpha=1.0, beta=4.0)
    a = loss.assigner
    assert (a.topk, a.alpha, a.beta, a.iou_kind) == (7, 1.0, 4.0, "giou")
    with pytest.raises(ValueError, match="topk"):
        DetectionLoss(3, STRIDES, assigner=TaskAlignedAssigner(3), topk=5)
    with pytest.raises(ConfigError, match="loss.cls_loss"):
        DetectionLoss(3, STRIDES, cls_loss="softmax")


def test_config_adapter_resolves_auto_weights():
    sec = LossSection(
        cls=1.0, iou="diou", cls_loss="focal", focal_gamma=1.5, focal_alpha=None,
        label_smoothing=0.05, cls_weights="auto", topk=5, alpha=1.0, beta=3.0,
    )  # fmt: skip
    labels = [np.array([[0, 0.5, 0.5, 0.2, 0.2], [0, 0.1, 0.1, 0.1, 0.1], [2, 0.3, 0.3, 0.1, 0.1]])]
    kw = loss_kwargs_from_config(sec, 3, labels)
    assert torch.allclose(kw["cls_weights"], torch.tensor([2 / 3, 1.0, 4 / 3]))
    loss = DetectionLoss(3, STRIDES, **kw)
    assert loss.gains["cls"] == 1.0 and loss.iou_kind == "diou" and loss.assigner.topk == 5
    ct = loss.cls_term
    assert (ct.kind, ct.gamma, ct.alpha, ct.label_smoothing) == ("focal", 1.5, None, 0.05)
    assert loss_kwargs_from_config(LossSection(), 3)["cls_weights"] is None
