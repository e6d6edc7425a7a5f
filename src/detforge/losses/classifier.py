"""Image-classification loss: cross-entropy with label smoothing, class weights and soft targets.

``compute(logits, targets)`` follows the detection loss's contract for the Stepper: the summed
(un-normalised) terms and the batch's mass (its number of images), so accumulation and logging
work the same. Targets are class indices (B,) or probabilities (B, C) (mixup, cutmix).
Class weights multiply each image's loss by its class's weight (with soft targets, the weights
of the classes it holds, in their proportions); the sum is divided by the number of images, not
by the sum of weights, so a batch of rare classes weighs more, as intended.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ClassifierLoss"]


class ClassifierLoss(nn.Module):
    def __init__(self, num_classes: int, label_smoothing: float = 0.0,
                 class_weights: list[float] | Tensor | None = None):  # fmt: skip
        super().__init__()
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.nc, self.label_smoothing = num_classes, label_smoothing
        if class_weights is not None:
            w = torch.as_tensor(class_weights, dtype=torch.float32)
            if w.shape != (num_classes,) or (w < 0).any():
                raise ValueError(f"class weights must be {num_classes} non-negative numbers")
            self.register_buffer("class_weights", w)
        else:
            self.class_weights = None

    def compute(self, logits: Tensor, targets: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """logits (B, C); targets (B,) int64 or (B, C) float. -> ({"cls": summed loss}, B)."""
        if targets.dtype.is_floating_point:
            probs = targets
        else:
            probs = F.one_hot(targets, self.nc).to(logits.dtype)
        if self.label_smoothing:
            probs = probs * (1 - self.label_smoothing) + self.label_smoothing / self.nc
        per_image = -(probs * F.log_softmax(logits.float(), dim=1)).sum(1)
        if self.class_weights is not None:
            base = targets if targets.dtype.is_floating_point else F.one_hot(targets, self.nc)
            per_image = per_image * (base.to(per_image.dtype) @ self.class_weights)
        return {"cls": per_image.sum()}, torch.tensor(float(len(logits)))

    def forward(self, logits: Tensor, targets: Tensor) -> dict[str, Tensor]:
        """Mean terms over the batch."""
        sums, mass = self.compute(logits, targets)
        return {k: v / mass for k, v in sums.items()}
