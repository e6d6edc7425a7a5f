"""Anchor maths: fit (best-possible recall), k-means and evolution on planted shapes."""

import numpy as np
import pytest

from detforge.assign.anchors import anchor_fit, auto_anchors, box_sizes, kmeans_wh

PLANTED = np.array(
    [
        [12, 16],
        [30, 20],
        [20, 44],
        [60, 45],
        [45, 90],
        [110, 70],
        [120, 200],
        [250, 150],
        [300, 320],
    ],
    dtype=np.float64,
)


def planted_boxes(seed: int = 0, per: int = 150, sigma: float = 0.08) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = np.exp(rng.normal(0.0, sigma, size=(len(PLANTED), per, 2)))
    return (PLANTED[:, None, :] * noise).reshape(-1, 2)


def test_fit_counts_recall_and_anchors_above_threshold():
    wh = np.array([[10.0, 10.0], [100.0, 100.0], [30.0, 10.0]])
    anchors = np.array([[10.0, 10.0], [20.0, 10.0]])
    fit = anchor_fit(wh, anchors, thr=4.0)
    # thr 4: [10,10] fits both anchors (x1, x2), [30,10] both (x3, x1.5), [100,100] neither
    # (x10 on a side); thr 2 (strict): [10,10] only itself, [30,10] only [20,10]
    assert fit.bpr == pytest.approx(2 / 3)
    assert fit.above == pytest.approx((2 + 0 + 2) / 3)
    assert anchor_fit(wh, anchors, thr=2.0).bpr == pytest.approx(2 / 3)
    assert anchor_fit(wh, anchors, thr=2.0).above == pytest.approx((1 + 0 + 1) / 3)


def test_auto_anchors_recover_planted_shapes_and_report_recall():
    wh = planted_boxes()
    anchors, fit = auto_anchors(wh, k=9, thr=4.0, seed=0, generations=300)
    assert anchors.shape == (9, 2)
    assert (np.diff(anchors.prod(1)) > 0).all()  # sorted by area
    for p in PLANTED:
        ratio = np.abs(np.log(anchors / p)).max(1).min()
        assert ratio < np.log(1.15), f"no anchor within 15% of planted {p}: {anchors.round(1)}"
    assert fit.bpr == 1.0
    assert fit.above >= 1.0
    # the reported fit is that of the returned anchors, and better than one generic shape
    assert fit == anchor_fit(wh, anchors, 4.0)
    assert anchor_fit(wh, np.array([[50.0, 50.0]] * 9), 4.0).bpr < 0.9


def test_evolution_does_not_lose_fitness_over_kmeans():
    wh = planted_boxes(seed=3, sigma=0.3)
    km = kmeans_wh(wh, 9, np.random.default_rng(0))
    evolved, fit = auto_anchors(wh, k=9, thr=4.0, seed=0, generations=200)
    assert fit.fitness >= anchor_fit(wh, km, 4.0).fitness


def test_auto_anchors_deterministic_for_a_seed():
    wh = planted_boxes()
    a, _ = auto_anchors(wh, k=9, thr=4.0, seed=5, generations=50)
    b, _ = auto_anchors(wh, k=9, thr=4.0, seed=5, generations=50)
    np.testing.assert_array_equal(a, b)


def test_kmeans_needs_enough_distinct_boxes():
    with pytest.raises(ValueError, match="at least 9 distinct"):
        kmeans_wh(np.array([[10.0, 10.0]] * 20), 9, np.random.default_rng(0))


def test_box_sizes_at_training_size():
    labels = [
        np.array([[0, 0.5, 0.5, 0.5, 0.25]]),
        np.zeros((0, 5)),
        np.array([[1, 0.5, 0.5, 0.001, 0.5]]),
    ]
    shapes = [(100, 200), (50, 50), (100, 100)]
    wh = box_sizes(labels, shapes, imgsz=64)
    # image 0: scale 64/200 -> width 0.5*200*0.32 = 32, height 0.25*100*0.32 = 8; the 0.064 px
    # wide box of image 2 is dropped
    np.testing.assert_allclose(wh, [[32.0, 8.0]])
