"""Images -> the network's input batch for inference, in one pass per image.

:func:`~detforge.data.augment.core.letterbox` resizes, then pads into a new canvas, and the
batch was stacked from those canvases: three copies of every image before the float
conversion. Here each resized image is written once into its slot of one uint8 batch already
filled with the pad value, and the batch becomes float once. The pixels are those of
``letterbox`` (same resize, same centring, same pad value), so detections are unchanged.

With a ``stride`` the canvas is rectangular (``predict.rect``): the smallest (H, W), both
multiples of ``stride``, that holds every resized image of the batch, as rectangular validation
builds it (:mod:`detforge.data.rect`). A 640x512 frame at 320 goes on a 320x256 canvas instead of
320x320: the same resize, a fifth fewer pixels to run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..data.augment.core import resize_long_side
from ..data.rect import fitted_size

__all__ = ["Letterboxed", "canvas_shape", "letterbox_batch", "to_input"]


@dataclass(frozen=True)
class Letterboxed:
    """Where one image went in the batch: ``(xyxy - [left, top, left, top]) / ratio`` maps a
    box back; ``shape`` is the original (h, w)."""

    ratio: float
    pad: tuple[int, int]
    shape: tuple[int, int]


def canvas_shape(
    shapes: list[tuple[int, int]], size: int, stride: int | None = None
) -> tuple[int, int]:
    """(H, W) of the canvas for images of ``shapes`` (h0, w0) resized to long side ``size``:
    square ``size`` x ``size`` without ``stride``; else per side the largest resized length
    rounded up to a multiple of ``stride`` (so never more than ``size`` rounded up)."""
    if stride is None:
        return size, size
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    fitted = [fitted_size(h, w, size) for h, w in shapes]
    h, w = (max(f[i] for f in fitted) for i in (0, 1))
    return math.ceil(h / stride) * stride, math.ceil(w / stride) * stride


def letterbox_batch(
    images: list[np.ndarray], size: int, pad_value: int = 114, stride: int | None = None
) -> tuple[np.ndarray, list[Letterboxed]]:
    """RGB uint8 images (H, W, 3) -> a (B, H, W, 3) uint8 batch, each resized so its long
    side is ``size`` and centred on the pad value, and where each one went.

    stride: None gives the square canvas H = W = ``size``; an int the smallest rectangle of
    multiples of it that holds every image (:func:`canvas_shape`)."""
    H, W = canvas_shape([img.shape[:2] for img in images], size, stride)
    batch = np.full((len(images), H, W, 3), pad_value, np.uint8)
    placed = []
    for slot, img in zip(batch, images, strict=True):
        out, r = resize_long_side(img, size)
        h, w = out.shape[:2]
        left, top = (W - w) // 2, (H - h) // 2
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
