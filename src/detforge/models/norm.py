"""Input normalisation inside a model (:class:`Normalize`) and model-wide BatchNorm settings
(``model.bn_momentum``, ``model.bn_eps``).

Models take float images in [0, 1]; a model whose backbone was designed for ImageNet statistics
(torchvision, timm) holds its mean and std as buffers in a ``normalize`` module in front of the
backbone, so checkpoints carry them and predict, val and export apply them.

``momentum`` follows PyTorch: the weight of the new batch in the running statistics
(``running = (1 - momentum) * running + momentum * batch``). ``eps`` is part of the function the
network computes, not only of training: it is an attribute, not a state-dict entry, so a model
rebuilt from a checkpoint must get the eps it was trained with before inference.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Normalize", "set_batchnorm"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """(x - mean) / std per channel for x (B, 3, H, W) in [0, 1], with mean and std as buffers."""

    def __init__(
        self, mean: tuple[float, ...] = (0.0, 0.0, 0.0), std: tuple[float, ...] = (1.0,) * 3
    ):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def set_batchnorm(model: nn.Module, momentum: float | None = None, eps: float | None = None) -> int:
    """Set ``momentum`` and / or ``eps`` of every BatchNorm (1d/2d/3d, SyncBatchNorm) in ``model``.

    None leaves that attribute unchanged (PyTorch's own ``momentum=None``, a cumulative average,
    is not offered). Returns the number of BatchNorm modules changed.

    A detector on a torchvision or timm backbone (``model.spec.backbone`` not ``"csp"``) keeps
    that backbone's own eps: its pretrained statistics were computed with it, and eps is part of
    the function (a running variance of 0.01 would move by 10% at eps 1e-3 instead of 1e-5).
    """
    if momentum is not None and not 0 < momentum <= 1:
        raise ValueError(f"model.bn_momentum: {momentum} is outside (0, 1]")
    if eps is not None and not eps > 0:
        raise ValueError(f"model.bn_eps: {eps} must be greater than 0")
    foreign = getattr(getattr(model, "spec", None), "backbone", "csp") != "csp"
    keep_eps = {id(m) for m in model.backbone.modules()} if foreign else set()
    count = 0
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if momentum is not None:
                module.momentum = momentum
            if eps is not None and id(module) not in keep_eps:
                module.eps = eps
            count += 1
    return count
