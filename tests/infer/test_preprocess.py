"""One-pass letterboxing for inference gives the pixels of the data pipeline's ``letterbox``
(and the float input the API built from them before), on synthetic and real hituav images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detforge.data.augment.core import letterbox
from detforge.data.images import read_image
from detforge.infer.preprocess import canvas_shape, letterbox_batch, to_input

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


@pytest.mark.parametrize(
    ("shape", "stride", "canvas"),
    [
        ((512, 640), 32, (256, 320)),  # hituav landscape: resized 256x320, no padding
        ((640, 512), 32, (320, 256)),  # portrait
        ((400, 400), 32, (320, 320)),  # square: the square canvas
        ((300, 640), 32, (160, 320)),  # resized 150x320: 150 rounds up to 160
        ((300, 640), 64, (192, 320)),  # and to 192 with a stride of 64
        ((640, 300), 64, (320, 192)),
        ((1, 200), 32, (32, 320)),  # one pixel high: one stride
    ],
)
def test_rect_canvas_is_the_smallest_stride_rectangle(shape, stride, canvas) -> None:
    img = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    batch, placed = letterbox_batch([img], 320, stride=stride)
    assert batch.shape == (1, *canvas, 3)
    # the pixels and placement of the data pipeline's letterbox on that canvas (as rect val)
    ref, _, ratio, pad = letterbox(img, EMPTY, 320, shape=canvas)
    np.testing.assert_array_equal(batch[0], ref)
    assert (placed[0].ratio, placed[0].pad, placed[0].shape) == (ratio, pad, shape)
    # the square canvas stays available and unchanged
    square, _ = letterbox_batch([img], 320)
    np.testing.assert_array_equal(square[0], letterbox(img, EMPTY, 320)[0])


def test_rect_batch_shares_the_largest_rectangle() -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in [(512, 640), (640, 480)]]
    # landscape with portrait: each side as long as the longer one needs
    assert canvas_shape([i.shape[:2] for i in images], 320, 32) == (320, 320)
    batch, placed = letterbox_batch(images[:1] * 2 + [images[1][:300]], 320, stride=32)
    # resized 256x320 twice and 200x320 (300x480): per side the max, rounded up to 32
    assert batch.shape == (3, 256, 320, 3)
    ref, _, ratio, pad = letterbox(images[1][:300], EMPTY, 320, shape=(256, 320))
    np.testing.assert_array_equal(batch[2], ref)
    assert (placed[2].ratio, placed[2].pad) == (ratio, pad) and pad == (0, 28)


def test_rect_real_images(shared) -> None:
    files = sorted((shared / "data" / "hituav" / "images" / "val").glob("*.jpg"))[:4]
    images = [read_image(f) for f in files]
    assert all(i.shape[:2] == (512, 640) for i in images)
    for size, canvas in ((320, (256, 320)), (640, (512, 640))):
        batch, placed = letterbox_batch(images, size, stride=32)
        assert batch.shape == (4, *canvas, 3)
        for b, img, at in zip(batch, images, placed, strict=True):
            ref, _, ratio, pad = letterbox(img, EMPTY, size, shape=canvas)
            np.testing.assert_array_equal(b, ref)
            assert (at.ratio, at.pad) == (ratio, pad) == (size / 640, (0, 0))
