"""Fold BatchNorm into the convolution before it, for inference.

In eval mode BatchNorm is an affine map per channel, ``y = (x - mean) / sqrt(var + eps) * g + b``,
so a bias-free conv followed by it equals one conv with scaled weights and a bias: one kernel
instead of two, and no separate pass over the activations.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import ConvBNAct

__all__ = ["fold_conv_bn", "fold_batchnorm"]


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv computing ``bn(conv(x))`` with ``bn`` in eval mode (running statistics)."""
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
    ).to(conv.weight.device, conv.weight.dtype)  # fmt: skip
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


def fold_batchnorm(model: nn.Module) -> int:
    """Fold the BatchNorm of every :class:`ConvBNAct` in ``model`` into its conv, in place.

    Only for inference: the model must be in eval mode (training would update statistics that
    no longer exist). Returns the number of folded layers.
    """
    if model.training:
        raise ValueError("fold_batchnorm: the model must be in eval mode")
    n = 0
    for m in model.modules():
        if isinstance(m, ConvBNAct) and isinstance(m.bn, nn.BatchNorm2d) and m.bn.affine:
            m.conv = fold_conv_bn(m.conv, m.bn)
            m.bn = nn.Identity()
            n += 1
    return n
