"""The loss of a model that computes its own loss terms (torchvision's detectors: a dict of
mean losses in training mode), under the Stepper's contract."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["LossDictLoss"]


class LossDictLoss(nn.Module):
    """Sums a model's own loss dict; the model needs the targets in its forward pass
    (:attr:`targets_in_forward`, read by the Stepper).

    Each term is the batch mean torchvision computes; :meth:`compute` returns it x B with mass
    B (the images of the batch), so, as for the YOLO losses, the logged terms are those means
    and the gradient of an accumulation window is the per-image mean x its images.
    """

    targets_in_forward = True

    def compute(
        self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]]
    ) -> tuple[dict[str, Tensor], Tensor]:
        """outputs: ``{name: scalar}`` from the model; targets: one dict per image (B,)."""
        b = len(targets)
        sums = {name: value.float() * b for name, value in outputs.items()}
        ref = next(iter(outputs.values()))
        return sums, torch.tensor(float(b), device=ref.device)
