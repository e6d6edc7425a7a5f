"""Letterbox, training augmentation geometry and reproducibility (detforge.data.augment)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detforge.data import AugmentParams, YoloDataset, letterbox
from detforge.data.augment.core import affine_boxes, filter_boxes
from detforge.data.augment.flip import RandomFlip
from detforge.data.augment.hsv import RandomHSV


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = np.prod(np.clip(rb - lt, 0, None))
    area = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    return float(inter / area)


@pytest.mark.parametrize(("w", "h"), [(100, 37), (37, 100), (640, 512), (20, 20), (1000, 999)])
def test_letterbox_and_inverse_mapping(w: int, h: int) -> None:
    rng = np.random.default_rng(w * h)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    xy = np.sort(rng.uniform(0, 1, (6, 2, 2)), axis=1) * [w, h]
    labels = np.concatenate([np.zeros((6, 1)), xy.reshape(6, 4)], axis=1).astype(np.float32)
    out, lab, ratio, (left, top) = letterbox(img, labels, 64, pad_value=114)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert lab[:, 1:].min() >= 0 and lab[:, 1:].max() <= 64
    assert min(left, top) == 0 or max(left, top) == 0  # padding on one axis only
    if left:
        assert (out[:, : left - 1] == 114).all()  # pad colour on the side
    back = (lab[:, 1:] - np.array([left, top, left, top])) / ratio
    assert np.abs(back - labels[:, 1:]).max() < 0.5


def _rect_dataset(tmp_path: Path, w: int, h: int, box: tuple[int, int, int, int], **kw):
    img = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 255
    (tmp_path / "images").mkdir(parents=True, exist_ok=True)
    (tmp_path / "labels").mkdir(exist_ok=True)
    Image.fromarray(img).save(tmp_path / "images/r.png")
    cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
    (tmp_path / "labels/r.txt").write_text(f"0 {cx} {cy} {bw} {bh}\n")
    return YoloDataset(tmp_path / "images", ["r"], cache_dir=tmp_path / "cache", **kw)


def test_training_augmentation_keeps_rectangle_inside_its_box(tmp_path: Path) -> None:
    aug = AugmentParams(hsv_h=0.015, hsv_s=0.7, hsv_v=0.4, fliplr=0.5, flipud=0.5, scale=0.5,
                        mosaic=0.0)  # fmt: skip
    ds = _rect_dataset(tmp_path, 160, 120, (40, 30, 100, 70), imgsz=96, augment=True, aug=aug,
                       pad_value=0)  # fmt: skip
    checked = 0
    for epoch in range(12):
        ds.set_epoch(epoch)
        s = ds[0]
        img = s["img"].numpy()
        assert s["img"].dtype == torch.uint8 and img.shape == (3, 96, 96)
        if len(s["labels"]) == 0:
            continue  # shifted out of the canvas (and filtered)
        gray = img.max(axis=0).astype(float)
        ys, xs = np.nonzero(gray > gray.max() / 2)
        drawn = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)
        box = s["labels"][0, 1:].numpy()
        assert _iou(drawn, box) >= 0.9, (epoch, drawn, box)
        checked += 1
    assert checked >= 8


def test_flip_twice_gives_input_back() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)
    labels = np.array([[1, 3, 4, 20, 25], [0, 0, 0, 50, 30]], np.float32)
    for horizontal in (True, False):
        flip = RandomFlip(1.0, horizontal=horizontal)
        once = flip({"img": img, "labels": labels}, rng)
        assert not np.array_equal(once["img"], img)
        twice = flip(dict(once), rng)
        np.testing.assert_array_equal(twice["img"], img)
        np.testing.assert_array_equal(twice["labels"], labels)
    gray = img[:, :, 0].copy()
    out = RandomFlip(1.0)(RandomFlip(1.0)({"img": gray, "labels": labels}, rng), rng)
    np.testing.assert_array_equal(out["img"], gray)


def test_hsv_on_gray_matches_colour_path() -> None:
    gray = np.random.default_rng(1).integers(0, 256, (20, 30), dtype=np.uint8)
    hsv = RandomHSV(0.5, 0.7, 0.4)
    one = hsv({"img": gray.copy()}, np.random.default_rng(7))["img"]
    three = hsv({"img": np.repeat(gray[..., None], 3, 2)}, np.random.default_rng(7))["img"]
    assert one.shape == (20, 30) and not np.array_equal(one, gray)
    for c in range(3):
        assert np.abs(three[..., c].astype(int) - one).max() <= 1


def test_affine_boxes_and_filter() -> None:
    m = np.array([[2.0, 0, 10], [0, 0.5, -5]])
    boxes = np.array([[0, 0, 10, 20], [5, 5, 6, 6]], np.float32)
    np.testing.assert_allclose(affine_boxes(boxes, m), [[10, -5, 30, 5], [20, -2.5, 22, -2]])
    p = AugmentParams(min_side=2, min_area=4, max_aspect=10, min_visible=0.5)
    xyxy = np.array(
        [
            [10, 10, 30, 30],  # kept
            [10, 10, 11, 30],  # too thin
            [-15, 10, 5, 30],  # 25% visible
            [0, 0, 40, 2.5],  # aspect 16
            [5, 5, 5, 5],  # empty
        ],
        np.float32,
    )
    clipped, keep = filter_boxes(xyxy, 64, 64, p)
    assert keep.tolist() == [True, False, False, False, False]
    assert clipped[2].tolist() == [0, 10, 5, 30]


def test_same_seed_epoch_index_same_sample(yolo_root: Path, cache_dir: Path) -> None:
    def make(seed: int) -> YoloDataset:
        return YoloDataset(yolo_root / "images/train", ["a", "b"], imgsz=64, augment=True,
                           seed=seed, cache_dir=cache_dir)  # fmt: skip

    a, b = make(3), make(3)
    a.set_epoch(2)
    s1, s2 = a[1], b[(1, 2)]
    assert torch.equal(s1["img"], s2["img"]) and torch.equal(s1["labels"], s2["labels"])
    others = [a[(1, 3)]["img"], make(4)[(1, 2)]["img"]]
    assert not any(torch.equal(s1["img"], o) for o in others)


def test_sample_contract_val_mode(yolo_root: Path, cache_dir: Path) -> None:
    ds = YoloDataset(yolo_root / "images/train", ["a", "b"], imgsz=64, cache_dir=cache_dir)
    s = ds[0]
    assert set(s) == {"img", "labels", "path", "image_id", "orig_shape", "ratio", "pad"}
    assert s["img"].shape == (3, 64, 64) and s["img"].dtype == torch.uint8
    assert s["labels"].dtype == torch.float32 and s["labels"].shape == (2, 5)
    assert s["orig_shape"] == (60, 80) == ds.shapes[0] and s["image_id"] == 0
    assert s["ratio"] == 0.8 and s["pad"] == (0, 8)
    # first box: class 0, centre (40, 30), 16 x 12 px in the original
    np.testing.assert_allclose(s["labels"][0].numpy(), [0, 25.6, 27.2, 38.4, 36.8], atol=1e-4)
    assert ds[2]["labels"].shape == (0, 5)
    with pytest.raises(ValueError, match="multiple of 32"):
        YoloDataset(yolo_root / "images/train", ["a", "b"], imgsz=100, cache_dir=cache_dir)
