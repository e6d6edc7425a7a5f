"""Images -> the network's input batch for inference, in one pass per image.

:func:`~detforge.data.augment.core.letterbox` resizes, then pads into a new canvas, and the
batch was stacked from those canvases: three copies of every image before the float
conversion. Here each resized image is written once into its slot of one uint8 batch already
filled with the pad value, and the batch becomes float once. The pixels are those of
``letterbox`` (same resize, same centring, same pad value), so detections are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.augment.core import resize_long_side

__all__ = ["Letterboxed", "letterbox_batch", "to_input"]


@dataclass(frozen=True)
class Letterboxed:
    """Where one image went in the batch: ``(xyxy - [left, top, left, top]) / ratio`` maps a
    box back; ``shape`` is the original (h, w)."""

    ratio: float
    pad: tuple[int, int]
    shape: tuple[int, int]


def letterbox_batch(
    images: list[np.ndarray], size: int, pad_value: int = 114
) -> tuple[np.ndarray, list[Letterboxed]]:
    """RGB uint8 images (H, W, 3) -> a (B, size, size, 3) uint8 batch, each resized so its long
    side is ``size`` and centred on the pad value, and where each one went."""
    batch = np.full((len(images), size, size, 3), pad_value, np.uint8)
    placed = []
    for slot, img in zip(batch, images, strict=True):
        out, r = resize_long_side(img, size)
        h, w = out.shape[:2]
        left, top = (size - w) // 2, (size - h) // 2
        slot[top : top + h, left : left + w] = out
        placed.append(Letterboxed(r, (left, top), (int(img.shape[0]), int(img.shape[1]))))
    return batch, placed


def to_input(batch: np.ndarray, device: torch.device, channels_last: bool = True) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1] on ``device``; the uint8 batch, not
    floats, crosses to a GPU.

    channels_last: the NHWC buffer viewed as NCHW, no reordering (the PyTorch models run
    channels-last); False reorders the uint8 bytes, a quarter of the floats' size, into the
    contiguous layout onnxruntime reads, so it needs no float copy. Equal values either way.
    """
    x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2)
    if not channels_last:
        x = x.contiguous()
    return x.float().div_(255)
