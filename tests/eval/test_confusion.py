"""Confusion matrix: class-agnostic greedy IoU matching, background row and column, thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from detforge.eval._match import to_records
from detforge.eval.metrics import confusion_matrix

BG = 3  # index of background with 3 classes


def _sq(i: int, h: float = 10.0) -> list[float]:
    return [20.0 * i, 0.0, 20.0 * i + 10, h]


def _cm(pred, gt, **kw):
    return confusion_matrix(to_records(pred, gt), 3, **kw)


def test_hand_built_scene():
    gt = {0: ([_sq(0), _sq(1), _sq(2)], [0, 1, 2])}
    pred = {
        0: (
            [_sq(0), _sq(1), _sq(6), _sq(2)],
            [0.9, 0.8, 0.7, 0.1],  # the last one is below the confidence threshold
            [0, 2, 1, 2],
        )
    }
    expected = np.zeros((4, 4), int)
    expected[0, 0] = 1  # found with the right class
    expected[1, 2] = 1  # object of class 1 called class 2
    expected[2, BG] = 1  # object of class 2 missed (its only box scores 0.1)
    expected[BG, 1] = 1  # a class-1 box on background
    assert np.array_equal(_cm(pred, gt, conf=0.25), expected)
    # lowering the threshold lets the 0.1 box find its object
    low = _cm(pred, gt, conf=0.05)
    assert low[2, 2] == 1 and low[2, BG] == 0


def test_greedy_by_iou_not_by_score():
    gt = {0: ([_sq(0)], [0])}
    # class 1 at IoU 0.7 with a high score, class 0 at IoU 0.95 with a low score
    pred = {0: ([_sq(0, 7), _sq(0, 9.5)], [0.9, 0.5], [1, 0])}
    m = _cm(pred, gt)
    assert m[0, 0] == 1 and m[BG, 1] == 1 and m.sum() == 2


def test_iou_threshold_is_settable():
    gt = {0: ([_sq(0)], [0])}
    pred = {0: ([_sq(0, 7)], [0.9], [0])}  # IoU 0.7
    assert _cm(pred, gt, iou=0.5)[0, 0] == 1
    m = _cm(pred, gt, iou=0.8)
    assert m[0, 0] == 0 and m[0, BG] == 1 and m[BG, 0] == 1


def test_one_to_one_and_totals():
    rng = np.random.default_rng(3)
    gt, pred = {}, {}
    for i in range(20):
        m = int(rng.integers(0, 6))
        xy = rng.uniform(0, 100, (m, 2))
        gb = np.concatenate([xy, xy + rng.uniform(5, 30, (m, 2))], 1)
        n = int(rng.integers(0, 10))
        b = np.concatenate([gb, rng.uniform(0, 100, (n, 4))])[: max(n, 1)] + rng.normal(0, 2, 4)
        b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 1)
        gt[i] = (gb, rng.integers(0, 3, m))
        pred[i] = (b, rng.uniform(size=len(b)), rng.integers(0, 3, len(b)))
    m = _cm(pred, gt, conf=0.3)
    n_gt = np.bincount(np.concatenate([g[1] for g in gt.values()]), minlength=3)
    assert np.array_equal(m[:3].sum(axis=1), n_gt)  # every object once: matched or missed
    n_det = np.zeros(3, int)
    for _, s, c in pred.values():
        n_det += np.bincount(c[s >= 0.3], minlength=3)
    assert np.array_equal(m[:, :3].sum(axis=0), n_det)  # every shown detection once
    assert m[BG, BG] == 0


def test_crowd_regions_are_neither_objects_nor_false_alarms():
    gt = {0: ([_sq(0), [100, 0, 200, 50]], [0, 1], [False, True])}
    pred = {0: ([_sq(0), [110, 5, 130, 25]], [0.9, 0.9], [0, 1])}
    m = _cm(pred, gt)
    assert m[0, 0] == 1 and m.sum() == 1


def test_unknown_class_is_an_error():
    with pytest.raises(ValueError, match="class 5"):
        _cm({0: ([_sq(0)], [0.9], [5])}, {0: ([_sq(0)], [0])})
