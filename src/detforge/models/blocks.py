"""Convolutional building blocks of the detforge YOLO family."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ConvBNAct", "Bottleneck", "CSPStage", "SPPF", "DWConvBNAct"]


class ConvBNAct(nn.Module):
    """Conv2d (no bias) -> BatchNorm -> SiLU, 'same' padding for odd kernels."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, groups: int = 1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class DWConvBNAct(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1, each with BN and SiLU (a cheap 3x3 conv)."""

    def __init__(self, c_in: int, c_out: int, k: int = 3):
        super().__init__(ConvBNAct(c_in, c_in, k, groups=c_in), ConvBNAct(c_in, c_out, 1))


class Bottleneck(nn.Module):
    """Two 3x3 convs with an optional identity shortcut (channels unchanged)."""

    def __init__(self, c: int, shortcut: bool = True):
        super().__init__()
        self.cv1 = ConvBNAct(c, c, 3)
        self.cv2 = ConvBNAct(c, c, 3)
        self.shortcut = shortcut

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.shortcut else y


class CSPStage(nn.Module):
    """Cross-stage-partial stage with dense outputs.

    A 1x1 conv splits the input into two halves; one half passes through ``n`` bottlenecks in
    sequence and every intermediate result is kept, so the closing 1x1 conv sees features of
    every depth (2 + n halves). Gradient paths of many lengths make small models train fast.
    """

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = True, e: float = 0.5):
        super().__init__()
        self.hidden = max(int(c_out * e), 8)
        self.cv1 = ConvBNAct(c_in, 2 * self.hidden, 1)
        self.blocks = nn.ModuleList(Bottleneck(self.hidden, shortcut) for _ in range(n))
        self.cv2 = ConvBNAct((2 + n) * self.hidden, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        parts = list(self.cv1(x).chunk(2, dim=1))
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling by repeated max-pooling (receptive fields k, 2k-1, 3k-2)."""

    def __init__(self, c_in: int, c_out: int, k: int = 5):
        super().__init__()
        hidden = c_in // 2
        self.cv1 = ConvBNAct(c_in, hidden, 1)
        self.pool = nn.MaxPool2d(k, 1, k // 2)
        self.cv2 = ConvBNAct(hidden * 4, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, dim=1))
