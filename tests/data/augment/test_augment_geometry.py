"""Box correctness of the single-image geometric augmentations: random perspective (each of
degrees, shear, scale, translate, perspective, and all together), flips, letterbox; clipping and
dropping of boxes that leave the canvas.

How "the box stays on the drawn pixels" is measured: the image is black with a white filled
rectangle whose box is the label; after the transform, the drawn pixels are those above half
intensity and their bounding box is compared with the transformed label. Bilinear interpolation
and the half-intensity threshold move each measured edge by up to about one pixel, so for an
object of side L the IoU can fall to ((L - 2) / (L + 2))^2 through sampling alone: 0.9 is a fair
bound for objects of 80 px and more, which is what these tests use (objects stay >= 80 px after
the strongest zoom-out). For rotations and shears the label is the axis-aligned hull of the
transformed box corners, and a filled rectangle transformed is a parallelogram whose pixel hull
is that same hull, so the bound holds there too; objects are kept inside the canvas in those
cases because a hull clipped at the border is larger than the visible part of a rotated object.
"""

from __future__ import annotations

import numpy as np
import pytest

from detforge.data.augment.core import (
    AugmentParams,
    clip_boxes,
    letterbox,
)
from detforge.data.augment.flip import RandomFlip
from detforge.data.augment.perspective import RandomPerspective, perspective_boxes

SIZE = 320


def iou(a: np.ndarray, b: np.ndarray) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    return inter / float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)


def drawn_box(img: np.ndarray) -> np.ndarray | None:
    """Bounding box [x1, y1, x2, y2] (pixel edges) of the pixels above half intensity."""
    gray = img if img.ndim == 2 else img.max(axis=2)
    ys, xs = np.nonzero(gray > 127)
    if not len(xs):
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


def rect_sample(w: int, h: int, box: tuple[int, int, int, int], gray: bool = False) -> dict:
    img = np.zeros((h, w) if gray else (h, w, 3), np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 255
    return {"img": img, "labels": np.array([[0, *box]], np.float32)}


def no_jitter(**kw: float) -> AugmentParams:
    """Params with every geometric term off except ``kw``; loose box rules."""
    base = dict(scale=0.0, translate=0.0, degrees=0.0, shear=0.0, perspective=0.0)
    return AugmentParams(**{**base, **kw}, min_visible=0.0, min_side=1.0, min_area=1.0)


class FixedRng:
    """Stands in for the generator: ``uniform`` returns given values in [-1, 1] (the 8 draws of
    ``random_perspective_matrix``: angle, scale, shear x, shear y, persp x, persp y, tx, ty)."""

    def __init__(self, u: list[float]) -> None:
        self.u = np.array(u, np.float64)

    def uniform(self, low: float, high: float, n: int) -> np.ndarray:
        return low + (self.u + 1) / 2 * (high - low)


CASES = {
    "degrees": dict(degrees=40.0),
    "shear": dict(shear=15.0),
    "scale": dict(scale=0.5),
    "translate": dict(translate=0.15),
    "perspective": dict(perspective=0.0008),
    "all": dict(degrees=25.0, shear=8.0, scale=0.3, translate=0.1, perspective=0.0005),
}


@pytest.mark.parametrize("gray", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_random_perspective_keeps_box_on_drawn_pixels(case: str, gray: bool) -> None:
    # a 320 x 240 tile (long side = output size) with a 130 x 100 object off-centre
    t = RandomPerspective(SIZE, no_jitter(**CASES[case]), pad_value=0)
    checked = 0
    for seed in range(8):
        s = t(rect_sample(SIZE, 240, (70, 60, 200, 160), gray), np.random.default_rng(seed))
        assert s["img"].shape == ((SIZE, SIZE) if gray else (SIZE, SIZE, 3))
        assert len(s["labels"]) == 1, "an object inside the canvas was dropped"
        box = s["labels"][0, 1:]
        if box.min() <= 0 or box.max() >= SIZE:
            continue  # touches the border: see the module docstring
        got = iou(drawn_box(s["img"]), box)
        assert got >= 0.9, (case, seed, drawn_box(s["img"]), box)
        checked += 1
    assert checked >= 6


def test_scale_and_shift_edges_within_a_pixel() -> None:
    # the fast resize path of a pure scale + shift: a half-pixel convention error would show here
    t = RandomPerspective(SIZE, no_jitter(scale=0.5, translate=0.2), pad_value=0)
    for seed in range(10):
        s = t(rect_sample(SIZE, 240, (100, 80, 220, 170)), np.random.default_rng(seed))
        box = s["labels"][0, 1:]
        np.testing.assert_allclose(drawn_box(s["img"]), box, atol=1.0)


def test_warp_path_matches_resize_path() -> None:
    # a tiny rotation takes the warpAffine path; its boxes must agree with the resize path's
    sample = rect_sample(SIZE, 240, (100, 80, 220, 170))
    rotated = RandomPerspective(SIZE, no_jitter(degrees=1e-9), pad_value=0)
    plain = RandomPerspective(SIZE, no_jitter(), pad_value=0)
    u = [0.3, -0.6, 0, 0, 0, 0, 0.4, -0.2]
    a = rotated({**sample}, FixedRng(u))
    b = plain({**sample}, FixedRng(u))
    np.testing.assert_allclose(a["labels"], b["labels"], atol=0.5)
    assert np.abs(a["img"].astype(int) - b["img"].astype(int)).mean() < 2


@pytest.mark.parametrize("horizontal", [True, False])
def test_flip_keeps_box_and_twice_gives_input_back(horizontal: bool) -> None:
    rng = np.random.default_rng(0)
    s = rect_sample(200, 150, (20, 30, 110, 120))
    s["img"] = s["img"] | rng.integers(0, 100, s["img"].shape, dtype=np.uint8)  # texture
    flip = RandomFlip(1.0, horizontal=horizontal)
    once = flip({**s}, rng)
    assert not np.array_equal(once["img"], s["img"])
    assert iou(drawn_box(once["img"]), once["labels"][0, 1:]) >= 0.99
    twice = flip({**once}, rng)
    np.testing.assert_array_equal(twice["img"], s["img"])
    np.testing.assert_array_equal(twice["labels"], s["labels"])


@pytest.mark.parametrize(("w", "h"), [(300, 160), (160, 300), (700, 500)])
def test_letterbox_keeps_box_on_drawn_pixels(w: int, h: int) -> None:
    box = (w // 5, h // 4, w // 5 + w // 2, h // 4 + h // 2)
    s = rect_sample(w, h, box)
    out, labels, ratio, (left, top) = letterbox(s["img"], s["labels"], SIZE, pad_value=0)
    assert out.shape == (SIZE, SIZE, 3)
    assert iou(drawn_box(out), labels[0, 1:]) >= 0.95
    back = (labels[0, 1:] - [left, top, left, top]) / ratio
    np.testing.assert_allclose(back, box, atol=1e-3)


def test_box_leaving_the_canvas_is_clipped_to_its_visible_part() -> None:
    # shift right by 0.4 * 320 = 128 px: the object (x 150..270) ends up at 278..398, cut at 320
    t = RandomPerspective(SIZE, no_jitter(translate=0.4), pad_value=0)
    s = t(rect_sample(SIZE, 240, (150, 60, 270, 160)), FixedRng([0, 0, 0, 0, 0, 0, 1.0, 0]))
    assert len(s["labels"]) == 1
    box = s["labels"][0, 1:]
    assert box[2] == SIZE
    assert iou(drawn_box(s["img"]), box) >= 0.9
    np.testing.assert_allclose(s["visible"], [42 / 120], atol=0.01)


@pytest.mark.parametrize(
    ("rule", "keeps"), [(dict(min_visible=0.3), True), (dict(min_visible=0.4), False)]
)
def test_min_visible_decides_a_box_cut_by_the_border(rule: dict, keeps: bool) -> None:
    p = AugmentParams(**{**no_jitter(translate=0.4).__dict__, **rule})
    s = RandomPerspective(SIZE, p, pad_value=0)(
        rect_sample(SIZE, 240, (150, 60, 270, 160)), FixedRng([0, 0, 0, 0, 0, 0, 1.0, 0])
    )  # 35% of the object stays visible
    assert (len(s["labels"]) == 1) is keeps


def test_box_shifted_out_entirely_is_dropped() -> None:
    t = RandomPerspective(SIZE, no_jitter(translate=0.5), pad_value=0)
    s = t(rect_sample(SIZE, 240, (240, 60, 300, 160)), FixedRng([0, 0, 0, 0, 0, 0, 1.0, 0]))
    assert s["labels"].shape == (0, 5) and s["visible"].shape == (0,)


def test_size_rules_drop_small_thin_and_elongated_boxes() -> None:
    p = AugmentParams(min_side=3, min_area=20, max_aspect=8, min_visible=0.25)
    xyxy = np.array(
        [
            [10, 10, 40, 40],  # kept
            [10, 10, 12, 40],  # side 2 < 3
            [10, 10, 14, 14],  # area 16 < 20
            [0, 0, 63, 7],  # aspect 9 > 8
            [-30, 10, 10, 40],  # 25% visible, kept
            [10, 10, 40, 40],  # kept on its own, but half was already cut earlier (prior)
        ],
        np.float32,
    )
    prior = np.array([1, 1, 1, 1, 1, 0.4], np.float32)
    clipped, keep, visible = clip_boxes(xyxy, 64, 64, p, prior)
    assert keep.tolist() == [True, False, False, False, True, True]
    np.testing.assert_allclose(visible, [1, 1, 1, 1, 0.25, 0.4])
    assert clipped[4].tolist() == [0, 10, 10, 40]
    _, keep, _ = clip_boxes(xyxy, 64, 64, AugmentParams(min_visible=0.5), prior)
    assert not keep[4] and not keep[5]  # 0.25 and 0.4 are now too little


def test_boxes_behind_the_horizon_are_invalid() -> None:
    m = np.array([[1.0, 0, 0], [0, 1.0, 0], [-0.01, 0, 1.0]])  # weight 1 - 0.01 x: 0 at x = 100
    boxes = np.array([[10, 10, 50, 50], [80, 10, 120, 50]], np.float32)
    hull, valid = perspective_boxes(boxes, m)
    assert valid.tolist() == [True, False]
    # a line maps to a line: the first box's hull is that of its 4 corners
    np.testing.assert_allclose(hull[0], [10 / 0.9, 10 / 0.9, 50 / 0.5, 50 / 0.5], rtol=1e-5)
