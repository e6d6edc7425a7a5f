"""Classification term of the detection loss: BCE or focal, label smoothing, per-class weights.

Targets are the assigner's soft, IoU-aware class scores ``t`` in [0, 1], shape (B, N, K): at a
foreground anchor the assigned class holds a value up to the object's best IoU, the other classes
0; background anchors are all 0. Every element is an independent sigmoid / BCE problem.

Focal loss with soft targets
    Lin et al. (2017) scale BCE by ``(1 - p_t) ** gamma`` with ``p_t = p`` for a target 1 and
    ``1 - p`` for 0. The literal soft version, ``p_t = p t + (1 - p)(1 - t)``, gives
    ``1 - p_t = p + t - 2 p t``, which is not 0 at ``p = t`` (it is ``2 t (1 - t)``) and changes
    with ``p``: it moves the minimum away from the IoU target, towards 0 or 1. We use
    ``|t - p| ** gamma`` instead (the quality focal loss of GFL, Li et al. 2020): identical to
    ``(1 - p_t) ** gamma`` for 0/1 targets, zero at ``p = t``, so predictions still learn the IoU.
    ``alpha`` weights the positive part of the BCE (``t log p``) and ``1 - alpha`` its negative
    part (``(1 - t) log(1 - p)``), which for 0/1 targets is exactly Lin et al.'s ``alpha_t``;
    ``alpha=None`` leaves both parts at weight 1.

Label smoothing
    ``t' = t (1 - eps) + eps / K`` for every class of foreground anchors only. Background anchors
    keep all-zero targets: smoothing them would ask every background location (tens of thousands
    per image) to score ``eps / K`` for every class, a uniform confidence floor with nothing to do
    with the over-confidence between classes that smoothing is meant to curb.

Per-class weights
    One weight per class multiplies that class column of the elementwise loss (positive and
    negative terms alike). ``"auto"`` weights are inverse class frequencies of the training
    labels, scaled to mean 1 over the classes present (see :func:`class_weights_from_labels`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config.fields import ConfigError

__all__ = [
    "ClassificationLoss",
    "smooth_targets",
    "focal_bce_with_logits",
    "class_weights_from_labels",
    "check_class_weights",
    "resolve_class_weights",
]

CLS_LOSSES = ("bce", "focal")


def smooth_targets(targets: Tensor, eps: float, fg_mask: Tensor | None = None) -> Tensor:
    """Label smoothing. targets: (..., K); fg_mask: (...) bool, rows to smooth (None: all)."""
    if eps == 0:
        return targets
    smoothed = targets * (1.0 - eps) + eps / targets.shape[-1]
    return smoothed if fg_mask is None else torch.where(fg_mask[..., None], smoothed, targets)


def focal_bce_with_logits(
    logits: Tensor, targets: Tensor, gamma: float = 2.0, alpha: float | None = None
) -> Tensor:
    """Elementwise focal loss on soft targets (see the module docstring). Same shape as inputs.

    With ``gamma=0`` and ``alpha=None`` this is exactly ``binary_cross_entropy_with_logits``.
    """
    if alpha is None:
        loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    else:
        # log-sigmoid keeps both parts finite for large |logits|
        loss = -(
            alpha * targets * F.logsigmoid(logits)
            + (1.0 - alpha) * (1.0 - targets) * F.logsigmoid(-logits)
        )
    if gamma > 0:
        # the clamp keeps the gradient of |d| ** gamma finite at d = 0 when gamma < 1
        loss = loss * (targets - logits.sigmoid()).abs().clamp(min=1e-12).pow(gamma)
    return loss


def class_weights_from_labels(labels: Sequence[np.ndarray], num_classes: int) -> Tensor:
    """Inverse class frequency, mean 1 over the classes present; absent classes get 1.

    labels: per image an (n, 5) array whose column 0 is the class id (YOLO ``[cls, ...]``).
    Returns a float32 tensor (K,).
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    for lab in labels:
        lab = np.asarray(lab)
        if lab.size == 0:
            continue
        cls = lab.reshape(-1, lab.shape[-1])[:, 0]
        ids = cls.astype(np.int64)
        if (ids != cls).any() or ids.min() < 0 or ids.max() >= num_classes:
            raise ValueError(
                f"class ids must be integers in [0, {num_classes}), got {cls.tolist()}"
            )
        counts += np.bincount(ids, minlength=num_classes)
    weights = np.ones(num_classes, dtype=np.float64)
    present = counts > 0
    if present.any():
        inverse = 1.0 / counts[present]
        weights[present] = inverse / inverse.mean()
    return torch.tensor(weights, dtype=torch.float32)


def check_class_weights(value: Sequence[float] | Tensor | None, num_classes: int) -> Tensor | None:
    """Validate explicit per-class weights -> float32 (K,) or None; errors name loss.cls_weights."""
    if value is None:
        return None
    if isinstance(value, str):
        if value == "auto":
            raise ConfigError(
                "loss.cls_weights: 'auto' needs the training labels; resolve it with "
                "resolve_class_weights(value, num_classes, labels) first"
            )
        raise ConfigError(
            f"loss.cls_weights: {value!r} is neither 'auto' nor a list of {num_classes} numbers"
        )
    try:
        w = torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"loss.cls_weights: expected a list of numbers, got {value!r}") from e
    if w.ndim != 1 or len(w) != num_classes:
        n = len(w) if w.ndim == 1 else tuple(w.shape)
        raise ConfigError(
            f"loss.cls_weights: {n} weights for {num_classes} classes; give one per class"
        )
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or not bool((w > 0).any()):
        raise ConfigError(f"loss.cls_weights: weights must be finite, >= 0, not all 0: {value!r}")
    return w


def resolve_class_weights(
    value: str | Sequence[float] | Tensor | None,
    num_classes: int,
    labels: Sequence[np.ndarray] | None = None,
) -> Tensor | None:
    """``loss.cls_weights`` -> tensor (K,) or None; ``'auto'`` reads ``labels`` (see above)."""
    if isinstance(value, str) and value == "auto":
        if labels is None:
            raise ConfigError("loss.cls_weights: 'auto' needs the training labels")
        return class_weights_from_labels(labels, num_classes)
    return check_class_weights(value, num_classes)


class ClassificationLoss(nn.Module):
    """Summed BCE or focal loss over anchors and classes, with smoothing and class weights."""

    def __init__(
        self,
        num_classes: int,
        kind: str = "bce",
        gamma: float = 2.0,
        alpha: float | None = 0.25,
        label_smoothing: float = 0.0,
        class_weights: Sequence[float] | Tensor | None = None,
    ):
        super().__init__()
        if kind not in CLS_LOSSES:
            raise ConfigError(f"loss.cls_loss: {kind!r} is not one of {', '.join(CLS_LOSSES)}")
        if gamma < 0:
            raise ConfigError(f"loss.focal_gamma: {gamma} is below the minimum 0")
        if alpha is not None and not 0 <= alpha <= 1:
            raise ConfigError(f"loss.focal_alpha: {alpha} is outside [0, 1]")
        if not 0 <= label_smoothing < 1:
            raise ConfigError(f"loss.label_smoothing: {label_smoothing} is outside [0, 1)")
        self.nc, self.kind, self.gamma, self.alpha = num_classes, kind, gamma, alpha
        self.label_smoothing = label_smoothing
        # not persistent: derived from the config / labels, not learned
        self.register_buffer(
            "class_weights", check_class_weights(class_weights, num_classes), persistent=False
        )

    def forward(self, logits: Tensor, targets: Tensor, fg_mask: Tensor | None = None) -> Tensor:
        """logits, targets: (B, N, K); fg_mask: (B, N) bool (None: rows with a target > 0).

        Returns the scalar sum over every element (the caller normalises).
        """
        if fg_mask is None:
            fg_mask = targets.amax(-1) > 0
        t = smooth_targets(targets, self.label_smoothing, fg_mask)
        if self.kind == "focal":
            loss = focal_bce_with_logits(logits, t, self.gamma, self.alpha)
        else:
            loss = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
        if self.class_weights is not None:
            loss = loss * self.class_weights.to(loss.device, loss.dtype)
        return loss.sum()
