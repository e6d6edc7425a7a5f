"""Gradient clipping that also reports the gradient norm it saw."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["GradientClipper"]


class GradientClipper:
    """Measure the total gradient norm, then clip by norm, by value, or not at all.

    Call after AMP unscaling. Returns the total norm before clipping (``inf``/``nan`` when the
    gradients are not finite, which the trainer counts as a skipped step).
    """

    def __init__(
        self,
        mode: str = "norm",
        max_norm: float = 10.0,
        norm_type: float = 2.0,
        max_value: float = 1.0,
    ):
        if mode not in ("norm", "value", "none"):
            raise ValueError(f"clip.mode: {mode!r} is not one of norm, value, none")
        self.mode, self.max_norm, self.norm_type, self.max_value = (
            mode,
            max_norm,
            norm_type,
            max_value,
        )

    def __call__(self, params: Iterable[nn.Parameter]) -> float:
        grads = [p for p in params if p.grad is not None]
        if not grads:
            return 0.0
        if self.mode == "norm":
            total = nn.utils.clip_grad_norm_(grads, self.max_norm, self.norm_type)
            return float(total)
        norms = [torch.linalg.vector_norm(p.grad.detach(), self.norm_type) for p in grads]
        total = torch.linalg.vector_norm(torch.stack(norms), self.norm_type)
        if self.mode == "value" and math.isfinite(float(total)):
            nn.utils.clip_grad_value_(grads, self.max_value)
        return float(total)
