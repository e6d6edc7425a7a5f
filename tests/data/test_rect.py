"""Rectangular validation: aspect-ratio batches, rectangle letterbox, exact mapping back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detforge.data import YoloDataset, build_dataloader, letterbox
from detforge.data.rect import enable_rect, fitted_size, rect_batches

SHAPES = [(512, 640), (480, 640), (640, 480), (300, 900), (640, 640), (100, 50), (513, 640)]


def test_batches_cover_all_and_fit() -> None:
    batches, targets = rect_batches(SHAPES, batch_size=2, imgsz=416, stride=32)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(SHAPES))) and len(batches) == 4
    aspects = [SHAPES[i][0] / SHAPES[i][1] for i in flat]
    assert aspects == sorted(aspects)  # grouped by aspect ratio
    for b in batches:
        assert len({targets[i] for i in b}) == 1  # one canvas per batch
    for (h0, w0), (th, tw) in zip(SHAPES, targets, strict=True):
        h, w = fitted_size(h0, w0, 416)
        assert max(h, w) == 416 and h <= th <= 416 and w <= tw <= 416  # never cropped
        assert th % 32 == 0 and tw % 32 == 0
        assert th - h < 32 or tw - w < 32  # the smallest stride multiple on some side


def test_hituav_like_shapes_cut_padding() -> None:
    _, t = rect_batches([(512, 640)] * 5, batch_size=4, imgsz=416, stride=32)
    assert set(t) == {(352, 416)}  # 416x333 resized, padded to 352 rows instead of 416
    assert 352 * 416 / (416 * 416) < 0.85
    _, t = rect_batches([(512, 640)] * 3, batch_size=4, imgsz=640, stride=32)
    assert set(t) == {(512, 640)}  # no padding at all
    _, t = rect_batches([(512, 640)], batch_size=1, imgsz=640, stride=64)
    assert t == [(512, 640)]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="multiple of the stride"):
        rect_batches(SHAPES, 2, imgsz=400, stride=32)
    with pytest.raises(ValueError, match="batch_size"):
        rect_batches(SHAPES, 0, imgsz=416)
    img = np.zeros((512, 640, 3), np.uint8)
    with pytest.raises(ValueError, match="does not fit"):
        letterbox(img, np.zeros((0, 5), np.float32), 416, shape=(320, 416))


def test_letterbox_rect_square_equals_letterbox() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (300, 500, 3), dtype=np.uint8)
    labels = np.array([[1, 10, 20, 110, 220]], np.float32)
    a = letterbox(img, labels, 320)
    b = letterbox(img, labels, 320, shape=(320, 320))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


def _write_sample(root: Path, name: str, w: int, h: int, box: tuple[int, int, int, int]) -> None:
    img = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 255
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(root / "images" / f"{name}.png")
    cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
    (root / "labels" / f"{name}.txt").write_text(f"0 {cx} {cy} {bw} {bh}\n")


def test_dataset_rect_mode_maps_back_exactly(tmp_path: Path) -> None:
    sizes = [(200, 160), (160, 200), (320, 100), (96, 96), (210, 170)]  # (w, h)
    boxes = [(20, 30, 120, 90), (5, 5, 50, 150), (200, 10, 300, 90), (0, 0, 96, 96), (9, 9, 99, 59)]
    for k, ((w, h), box) in enumerate(zip(sizes, boxes, strict=True)):
        _write_sample(tmp_path / "ds", f"im{k}", w, h, box)
    ds = YoloDataset(tmp_path / "ds" / "images", ["obj"], imgsz=128, cache=False)
    square = [ds[i] for i in range(len(ds))]
    batches = enable_rect(ds, batch_size=2, stride=32)
    loader = build_dataloader(ds, batch_size=2, shuffle=False, workers=0, seed=0, batches=batches)
    seen = []
    for batch in loader:  # collate stacks, so every batch has one image size
        for j, image_id in enumerate(batch["image_ids"]):
            seen.append(image_id)
            h0, w0 = batch["orig_shapes"][j]
            ratio, (left, top) = batch["ratios"][j], batch["pads"][j]
            assert ratio == square[image_id]["ratio"]  # same scale as square validation
            t = batch["targets"]
            xyxy = t[t[:, 0] == j][:, 2:].numpy().astype(np.float64)
            back = (xyxy - [left, top, left, top]) / ratio
            np.testing.assert_allclose(back[0], boxes[image_id], atol=1e-4)
            img = batch["img"][j].numpy()
            fh, fw = fitted_size(h0, w0, 128)
            assert img.shape[1:] == ds.rect_shapes[image_id]
            assert img.shape[1] * img.shape[2] <= 128 * 128
            # the resized image sits at (left, top), the rest is padding: nothing cropped
            inside = img[:, top : top + fh, left : left + fw]
            assert (inside != 114).any(axis=0).mean() > 0.9
            assert (img == 114).sum() == 3 * (img.shape[1] * img.shape[2] - fh * fw)
    assert sorted(seen) == list(range(len(ds)))
    assert [len(b) for b in batches] == [2, 2, 1]
    ds.set_rect_shapes(None)
    assert ds[0]["img"].shape == (3, 128, 128)


def test_rect_refuses_training_and_shuffle(tmp_path: Path) -> None:
    _write_sample(tmp_path / "ds", "a", 64, 48, (1, 1, 20, 20))
    ds = YoloDataset(tmp_path / "ds" / "images", ["obj"], imgsz=64, augment=True, cache=False)
    with pytest.raises(ValueError, match="validation"):
        enable_rect(ds, 4)
    with pytest.raises(ValueError, match="fixed batches"):
        build_dataloader(ds, 1, shuffle=True, workers=0, seed=0, batches=[[0]])
    with pytest.raises(ValueError, match="rect shapes"):
        ds.set_rect_shapes([(64, 64), (64, 64)])
