"""One-pass letterboxing for inference gives the pixels of the data pipeline's ``letterbox``
(and the float input the API built from them before), on synthetic and real hituav images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detforge.data.augment.core import letterbox
from detforge.data.images import read_image
from detforge.infer.preprocess import letterbox_batch, to_input

EMPTY = np.zeros((0, 5), np.float32)


def _reference(images: list[np.ndarray], size: int):
    """The API's pre-processing before the one-pass version: letterbox, stack, convert."""
    placed = [letterbox(img, EMPTY, size) for img in images]
    batch = np.stack([p[0] for p in placed])
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255)
    return batch, x.contiguous(memory_format=torch.channels_last), placed


def _check(images: list[np.ndarray], size: int) -> None:
    batch, placed = letterbox_batch(images, size)
    ref_batch, ref_x, ref_placed = _reference(images, size)
    np.testing.assert_array_equal(batch, ref_batch)
    for at, (_, _, ratio, pad), img in zip(placed, ref_placed, images, strict=True):
        assert (at.ratio, at.pad, at.shape) == (ratio, pad, img.shape[:2])
    x = to_input(batch, torch.device("cpu"))
    assert x.dtype == torch.float32 and x.shape == (len(images), 3, size, size)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, ref_x)
    nchw = to_input(batch, torch.device("cpu"), channels_last=False)  # what onnxruntime reads
    assert nchw.is_contiguous() and torch.equal(nchw, ref_x)


def test_synthetic_shapes_match_letterbox() -> None:
    rng = np.random.default_rng(0)
    # shrink, enlarge, already the size, one pixel high
    shapes = [(50, 90), (90, 50), (64, 64), (20, 33), (128, 128), (1, 200)]
    images = [rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in shapes]
    for size in (64, 96):
        _check(images, size)
        _check(images[:1], size)


@pytest.mark.parametrize("size", [320, 640])
def test_real_images_match_letterbox(shared, size) -> None:
    files = sorted((shared / "data" / "hituav" / "images" / "val").glob("*.jpg"))[:4]
    assert files, "hituav val images missing"
    _check([read_image(f) for f in files], size)
