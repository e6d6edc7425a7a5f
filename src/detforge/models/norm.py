"""Model-wide BatchNorm settings (``model.bn_momentum``, ``model.bn_eps``).

``momentum`` follows PyTorch: the weight of the new batch in the running statistics
(``running = (1 - momentum) * running + momentum * batch``). ``eps`` is part of the function the
network computes, not only of training: it is an attribute, not a state-dict entry, so a model
rebuilt from a checkpoint must get the eps it was trained with before inference.
"""

from __future__ import annotations

from torch import nn

__all__ = ["set_batchnorm"]


def set_batchnorm(model: nn.Module, momentum: float | None = None, eps: float | None = None) -> int:
    """Set ``momentum`` and / or ``eps`` of every BatchNorm (1d/2d/3d, SyncBatchNorm) in ``model``.

    None leaves that attribute unchanged (PyTorch's own ``momentum=None``, a cumulative average,
    is not offered). Returns the number of BatchNorm modules changed.
    """
    if momentum is not None and not 0 < momentum <= 1:
        raise ValueError(f"model.bn_momentum: {momentum} is outside (0, 1]")
    if eps is not None and not eps > 0:
        raise ValueError(f"model.bn_eps: {eps} must be greater than 0")
    count = 0
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if momentum is not None:
                module.momentum = momentum
            if eps is not None:
                module.eps = eps
            count += 1
    return count
