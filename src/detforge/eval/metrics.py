"""Precision, recall and F1 against confidence, mean IoU of matches, and the confusion matrix.

Rules (all boxes in original pixels, crowd ground truths never count as objects):

* **Matching for P/R/F1 and mean IoU** is COCO's at IoU ``iou`` (0.5): per image and class,
  detections in descending score order each take the free ground truth of their class with the
  highest IoU >= ``iou``; every detection is used (no max-dets cap); one matched to a crowd
  region is ignored. A match is a true positive (TP), any other detection a false positive.
* **Confidence curves**: at each confidence c of a grid (``np.linspace(0, 1, 1001)``), for class
  k: P_k(c) = TP / detections with score >= c (0 when there are none), R_k(c) = TP / ground
  truths, F1_k = 2 P R / (P + R) (0 when P + R = 0). The means run over classes that have ground
  truth. The reported operating point is the grid confidence that maximises the mean F1 (the
  lowest such, no smoothing); P, R and F1 there are the class means. The same formulas give the
  values at a user confidence.
* **mean_iou**: mean IoU of all TP matches at any confidence (each object's best-scoring match),
  so it measures localisation quality without depending on a threshold; 0 without matches.
* **Confusion matrix** (K+1, K+1), rows = true class, columns = predicted class, index K =
  background: detections with score >= ``conf`` are matched to ground truth regardless of class,
  greedily by descending IoU (ties: higher score, then lower detection index, then lower
  ground-truth index), one-to-one, pairs with IoU >= ``iou`` only. A matched pair counts at
  [true class, predicted class]; an unmatched ground truth at [class, background] (missed); an
  unmatched detection at [background, class] (false alarm) unless it lies on a crowd region
  (COCO crowd overlap >= ``iou``), which is not counted. [background, background] stays 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..boxes import coco_iou_matrix
from ._match import ImageRecord, match_image, to_records

__all__ = [
    "SCALAR_METRICS",
    "check_classes",
    "mean_matched_iou",
    "MatchTable",
    "ConfidenceCurves",
    "match_table",
    "confidence_curves",
    "prf_at",
    "confusion_matrix",
    "scalar_metrics",
]

#: Metric names :func:`scalar_metrics` returns (for fitness / early stopping).
SCALAR_METRICS: tuple[str, ...] = ("precision", "recall", "f1", "mean_iou")
CONF_GRID = np.linspace(0.0, 1.0, 1001)


@dataclass
class MatchTable:
    """All counted detections, flat: cls, score, tp (D,), iou (D,) (0 unless TP); n_gt (K,)."""

    cls: np.ndarray
    score: np.ndarray
    tp: np.ndarray
    iou: np.ndarray
    n_gt: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.n_gt)


def check_classes(records: list[ImageRecord], num_classes: int) -> None:
    """Raise if a detection or ground truth has a class outside 0 .. num_classes - 1."""
    for rec in records:
        for what, c in (("prediction", rec.classes), ("ground truth", rec.gt_classes)):
            bad = (c < 0) | (c >= num_classes)
            if bad.any():
                raise ValueError(
                    f"image {rec.image_id!r}: {what} class {int(c[bad][0])} is not in "
                    f"0..{num_classes - 1}"
                )


def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def match_table(records: list[ImageRecord], num_classes: int, iou: float = 0.5) -> MatchTable:
    """Match every image (COCO rule above) and flatten; ignored detections are dropped."""
    check_classes(records, num_classes)
    cls, score, tp, ious = [], [], [], []
    n_gt = np.zeros(num_classes, np.int64)
    for rec in records:
        gt_index, miou, ignored = match_image(rec, iou)
        keep = ~ignored
        cls.append(rec.classes[keep])
        score.append(rec.scores[keep])
        tp.append(gt_index[keep] >= 0)
        ious.append(miou[keep])
        n_gt += np.bincount(rec.gt_classes[~rec.gt_crowd], minlength=num_classes)
    return MatchTable(
        _cat(cls, np.int64), _cat(score, np.float64), _cat(tp, bool), _cat(ious, np.float64), n_gt
    )


def prf_at(table: MatchTable, conf: np.ndarray | float) -> tuple[np.ndarray, ...]:
    """Per-class precision, recall, F1 at confidence(s) ``conf`` -> three (K, C) arrays (or (K,)
    for a scalar ``conf``)."""
    c = np.atleast_1d(np.asarray(conf, np.float64))
    k = table.num_classes
    p, r = np.zeros((k, len(c))), np.zeros((k, len(c)))
    for j in range(k):
        sel = table.cls == j
        s = table.score[sel]
        order = np.argsort(-s, kind="stable")
        s, hits = s[order], table.tp[sel][order]
        tp_cum = np.concatenate([[0], np.cumsum(hits)])
        count = np.searchsorted(-s, -c, side="right")  # detections with score >= c
        tp = tp_cum[count].astype(np.float64)
        p[j] = np.divide(tp, count, out=np.zeros(len(c)), where=count > 0)
        if table.n_gt[j] > 0:
            r[j] = tp / table.n_gt[j]
    denom = p + r
    f1 = np.divide(2 * p * r, denom, out=np.zeros_like(p), where=denom > 0)
    if np.ndim(conf) == 0:
        return p[:, 0], r[:, 0], f1[:, 0]
    return p, r, f1


@dataclass
class ConfidenceCurves:
    """conf (C,) grid; precision, recall, f1 (K, C) per class; n_gt (K,); mean curves (C,) over
    classes with ground truth; best: grid index of the highest mean F1."""

    conf: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    n_gt: np.ndarray

    def mean(self, values: np.ndarray) -> np.ndarray:
        """(K, ...) -> (...) mean over classes with ground truth (zeros if there are none)."""
        has = self.n_gt > 0
        return values[has].mean(axis=0) if has.any() else np.zeros(values.shape[1:])

    @property
    def best(self) -> int:
        return int(np.argmax(self.mean(self.f1)))


def confidence_curves(table: MatchTable, grid: np.ndarray | None = None) -> ConfidenceCurves:
    """P, R, F1 per class over a confidence grid (default 0, 0.001, ..., 1)."""
    conf = CONF_GRID if grid is None else np.asarray(grid, np.float64)
    p, r, f1 = prf_at(table, conf)
    return ConfidenceCurves(conf, p, r, f1, table.n_gt)


def mean_matched_iou(table: MatchTable, conf: float = 0.0) -> float:
    """Mean IoU of true positives with score >= conf; 0.0 without any."""
    sel = table.tp & (table.score >= conf)
    return float(table.iou[sel].mean()) if sel.any() else 0.0


def scalar_metrics(
    predictions: Mapping[Any, Any] | Sequence[Any],
    ground_truth: Mapping[Any, Any] | Sequence[Any],
    num_classes: int,
    iou: float = 0.5,
) -> dict[str, float]:
    """``precision``, ``recall``, ``f1`` (class means at the best-mean-F1 confidence) and
    ``mean_iou``, the scalars a fitness or early-stopping rule may monitor.

    predictions / ground_truth: as :func:`detforge.eval._match.to_records` takes them, e.g. the
    validator's ``{image_id: Detections}`` and ``{image_id: (boxes, classes)}``.
    """
    table = match_table(to_records(predictions, ground_truth), num_classes, iou)
    curves = confidence_curves(table)
    b = curves.best
    return {
        "precision": float(curves.mean(curves.precision)[b]),
        "recall": float(curves.mean(curves.recall)[b]),
        "f1": float(curves.mean(curves.f1)[b]),
        "mean_iou": mean_matched_iou(table),
    }


def _greedy_pairs(ious: np.ndarray, scores: np.ndarray, thr: float) -> list[tuple[int, int]]:
    """One-to-one pairs with IoU >= thr, taken by descending IoU (ties: score, indices)."""
    d, g = np.nonzero(ious >= thr)
    order = np.lexsort((g, d, -scores[d], -ious[d, g]))
    used_d, used_g, pairs = set(), set(), []
    for i in order:
        if d[i] not in used_d and g[i] not in used_g:
            used_d.add(d[i])
            used_g.add(g[i])
            pairs.append((int(d[i]), int(g[i])))
    return pairs


def confusion_matrix(
    records: list[ImageRecord], num_classes: int, conf: float = 0.25, iou: float = 0.5
) -> np.ndarray:
    """(K+1, K+1) int64 counts, rows true class, columns predicted class, K = background."""
    check_classes(records, num_classes)
    k = num_classes
    mat = np.zeros((k + 1, k + 1), np.int64)
    for rec in records:
        keep = rec.scores >= conf
        boxes, scores, cls = rec.boxes[keep], rec.scores[keep], rec.classes[keep]
        real = ~rec.gt_crowd
        gt_boxes, gt_cls = rec.gt_boxes[real], rec.gt_classes[real]
        pairs = _greedy_pairs(coco_iou_matrix(boxes, gt_boxes), scores, iou)
        det_used, gt_used = np.zeros(len(cls), bool), np.zeros(len(gt_cls), bool)
        for di, gi in pairs:
            mat[gt_cls[gi], cls[di]] += 1
            det_used[di], gt_used[gi] = True, True
        np.add.at(mat, (gt_cls[~gt_used], k), 1)
        free = ~det_used
        if rec.gt_crowd.any() and free.any():
            crowd = rec.gt_boxes[rec.gt_crowd]
            crowd_iou = coco_iou_matrix(boxes, crowd, np.ones(len(crowd), bool))
            free &= ~(crowd_iou >= iou).any(axis=1)
        np.add.at(mat, (k, cls[free]), 1)
    return mat
