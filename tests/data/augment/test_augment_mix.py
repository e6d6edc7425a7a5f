"""Mixup and copy-paste: boxes stay on their objects, blends and pastes are what they claim, the
overlap rule of copy-paste holds, and both step aside when they should."""

from __future__ import annotations

import cv2
import numpy as np

from detforge.boxes import box_ioa
from detforge.data.augment.core import Compose
from detforge.data.augment.mix import CopyPaste, MixUp


def iou(a: np.ndarray, b: np.ndarray) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    return inter / float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)


def regions(img: np.ndarray, threshold: int) -> list[np.ndarray]:
    """xyxy boxes of the connected regions brighter than ``threshold``."""
    gray = img if img.ndim == 2 else img.max(axis=2)
    n, _, stats, _ = cv2.connectedComponentsWithStats((gray > threshold).astype(np.uint8))
    return [np.array([x, y, x + w, y + h], float) for x, y, w, h, _ in stats[1:n]]


def rects(w: int, h: int, boxes: list[tuple[int, int, int, int]], value: int = 255) -> dict:
    img = np.zeros((h, w, 3), np.uint8)
    for x1, y1, x2, y2 in boxes:
        img[y1:y2, x1:x2] = value
    labels = np.array([[k, *b] for k, b in enumerate(boxes)], np.float32).reshape(-1, 5)
    return {"img": img, "labels": labels}


class OneTile:
    """A source of one tile (what MixUp reads through ``load_tile``)."""

    def __init__(self, sample: dict) -> None:
        self.sample = sample

    def __len__(self) -> int:
        return 1

    def load_tile(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.sample["img"], self.sample["labels"].copy()


def test_mixup_blends_and_keeps_both_images_boxes() -> None:
    a = rects(200, 200, [(10, 20, 90, 110)])
    b = rects(200, 200, [(110, 80, 190, 180)])
    b["labels"][:, 0] = 7
    mix = MixUp(OneTile(b), Compose([]), p=1.0)
    out = mix({**a, "img": a["img"].copy()}, np.random.default_rng(3))
    np.testing.assert_array_equal(out["labels"][:, 0], [0, 7])
    assert out["visible"].shape == (2,)
    # the ratio is the Beta draw that follows the choice of the other image
    rng = np.random.default_rng(3)
    rng.random(), rng.integers(0, 1)
    r = rng.beta(32.0, 32.0)
    assert 0.2 < r < 0.8
    expected = cv2.addWeighted(a["img"], r, b["img"], 1 - r, 0)
    np.testing.assert_array_equal(out["img"], expected)
    found = regions(out["img"], 40)
    for box in out["labels"][:, 1:]:
        assert max(iou(box, f) for f in found) >= 0.95


def test_mixup_of_gray_and_colour_gives_colour_and_skips_after_close_mosaic() -> None:
    a = rects(64, 64, [(5, 5, 30, 30)])
    gray = {"img": a["img"][:, :, 0].copy(), "labels": a["labels"]}
    mix = MixUp(OneTile(a), Compose([]), p=1.0)
    assert mix(dict(gray), np.random.default_rng(0))["img"].shape == (64, 64, 3)
    off = mix({**gray, "mosaic": False}, np.random.default_rng(0))
    assert off["img"] is gray["img"] and len(off["labels"]) == 1


def test_copy_paste_pastes_mirrored_region_with_its_box() -> None:
    rng = np.random.default_rng(0)
    s = rects(240, 160, [(20, 30, 90, 120)])
    s["img"][30:120, 20:90] = rng.integers(128, 256, (90, 70, 3), dtype=np.uint8)  # texture
    out = CopyPaste(p=1.0)({**s, "img": s["img"].copy()}, rng)
    assert len(out["labels"]) == 2
    np.testing.assert_allclose(out["labels"][1], [0, 150, 30, 220, 120])
    np.testing.assert_array_equal(out["img"][30:120, 150:220], s["img"][30:120, 20:90][:, ::-1])
    np.testing.assert_array_equal(out["img"][:, :100], s["img"][:, :100])  # original untouched
    found = regions(out["img"], 100)
    for box in out["labels"][:, 1:]:
        assert max(iou(box, f) for f in found) >= 0.95
    assert s["img"][30:120, 150:220].max() == 0  # the input image was not written into


def test_copy_paste_refuses_copies_that_hide_other_objects() -> None:
    # object 0's mirror lands on object 1 (IoA 1): refused; object 2 is centred and would cover
    # itself: refused; object 3's mirror is free: pasted
    s = rects(300, 200, [(10, 10, 60, 60), (240, 10, 290, 60), (130, 80, 170, 120),
                         (20, 140, 70, 190)])  # fmt: skip
    out = CopyPaste(p=1.0, max_ioa=0.3)(s, np.random.default_rng(0))
    assert len(out["labels"]) == 5
    np.testing.assert_allclose(out["labels"][4], [3, 230, 140, 280, 190])
    ioa = box_ioa(out["labels"][4:, 1:], out["labels"][:4, 1:])
    assert (ioa < 0.3).all()


def test_copy_paste_copies_do_not_hide_each_other() -> None:
    # overlapping objects have overlapping mirrors: the second copy would cover half of the
    # first (IoA 0.51), so only the first goes in
    s = rects(300, 200, [(10, 10, 80, 80), (30, 30, 100, 100)])
    out = CopyPaste(p=1.0, max_ioa=0.3)(s, np.random.default_rng(0))
    assert len(out["labels"]) == 3
    np.testing.assert_allclose(out["labels"][2], [0, 220, 10, 290, 80])


def test_copy_paste_probability_zero_changes_nothing() -> None:
    s = rects(100, 100, [(5, 5, 30, 30)])
    out = CopyPaste(p=0.0)({**s}, np.random.default_rng(0))
    assert out["img"] is s["img"] and len(out["labels"]) == 1
