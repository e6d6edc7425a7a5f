"""Classification metrics on hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest

from detforge.eval.classify import classification_metrics, confusion_csv


def onehot_scores(pred, num_classes, second=None):
    s = np.zeros((len(pred), num_classes))
    s[np.arange(len(pred)), pred] = 0.9
    if second is not None:
        s[np.arange(len(pred)), second] = 0.5
    return s


def test_hand_built_case():
    labels = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 0, 2])
    m = classification_metrics(onehot_scores(pred, 4), labels, 4)
    assert m.confusion.tolist() == [[2, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert m.top1 == pytest.approx(4 / 6)
    np.testing.assert_allclose(m.precision, [2 / 3, 1 / 2, 1.0, 0.0])
    np.testing.assert_allclose(m.recall[:3], [2 / 3, 1 / 2, 1.0])
    assert np.isnan(m.recall[3])  # class 3 has no samples: out of the means
    np.testing.assert_allclose(m.f1, [2 / 3, 1 / 2, 1.0, 0.0])
    assert m.balanced_accuracy == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m.support.tolist() == [3, 2, 1, 0]
    d = m.as_dict(["a", "b", "c", "d"])
    assert d["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert d["per_class"]["b"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}


def test_top5_counts_the_true_class_among_the_five_best():
    labels = np.array([6, 6, 0])
    scores = np.tile(np.arange(7, 0, -1, dtype=float), (3, 1))  # class 0 best ... class 6 worst
    scores[1, 6] = 6.5  # second best for sample 1
    m = classification_metrics(scores, labels, 7)
    assert m.top1 == pytest.approx(1 / 3) and m.top5 == pytest.approx(2 / 3)
    # with fewer than 5 classes top5 is top-C: always 1
    assert classification_metrics(np.eye(3), np.array([2, 0, 1]), 3).top5 == 1.0


def test_hardest_mistakes_are_the_most_confident_wrong_ones():
    labels = np.array([0, 1, 1, 0])
    scores = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6]])
    m = classification_metrics(scores, labels, 2)
    assert m.hardest == [(1, 1, 0, 0.7), (3, 0, 1, 0.6)]


def test_confusion_csv_and_bad_input():
    text = confusion_csv(np.array([[1, 2], [0, 3]]), ["cat", "dog"])
    assert text.splitlines() == ["true \\ predicted,cat,dog", "cat,1,2", "dog,0,3"]
    with pytest.raises(ValueError, match="labels must be in 0..1"):
        classification_metrics(np.zeros((2, 2)), np.array([0, 2]), 2)
    with pytest.raises(ValueError, match=r"scores must be \(N, 3\)"):
        classification_metrics(np.zeros((2, 2)), np.array([0, 1]), 3)
