"""Per-image records and COCO-style matching shared by metrics, the confusion matrix and TIDE.

Inputs come in a few shapes (the validator's ``Detections``, the API's ``Prediction``, plain
tuples); :func:`to_records` turns them into one :class:`ImageRecord` per image with numpy
arrays in original pixels, in sorted image-id order (pycocotools' image order).

:func:`match_image` is COCOeval's bbox matching at one IoU threshold for the "all" area range:
per image and class, detections in descending score order (ties: input order) each take, among
the still free ground truths of their class with IoU >= threshold, the one with the highest
IoU, preferring a regular ground truth over a crowd one and, on equal IoU, the later one; a
detection matched to a crowd region is ignored. IoUs are computed by the evaluator's own
routine, so the result agrees with :class:`~detforge.eval.coco.COCOEvaluator` exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..boxes import coco_iou_matrix

__all__ = ["ImageRecord", "to_records", "match_image", "score_order"]


@dataclass
class ImageRecord:
    """One image. boxes (N, 4) xyxy float64, scores (N,), classes (N,) int64; gt_boxes (M, 4),
    gt_classes (M,) int64, gt_crowd (M,) bool, gt_area (M,) (COCO area, default w * h)."""

    image_id: Any
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    gt_boxes: np.ndarray
    gt_classes: np.ndarray
    gt_crowd: np.ndarray
    gt_area: np.ndarray
    path: str | None = None


def _np(x: Any, dtype: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, duck-typed so torch is not needed here
        x = x.detach().cpu().numpy()
    return np.asarray(x if x is not None else [], dtype=dtype)


def _boxes(x: Any, what: str) -> np.ndarray:
    b = _np(x, np.float64)
    if b.size == 0:
        return np.zeros((0, 4))
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{what}: boxes must have shape (N, 4), got {tuple(b.shape)}")
    return b


def _unpack_pred(p: Any, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections / Prediction (attributes) or a (boxes, scores, classes) tuple -> arrays."""
    if hasattr(p, "boxes"):
        b, s, c = p.boxes, p.scores, p.classes
    else:
        b, s, c = p
    boxes = _boxes(b, what)
    scores, classes = _np(s, np.float64).reshape(-1), _np(c, np.float64).reshape(-1)
    if not len(boxes) == len(scores) == len(classes):
        raise ValueError(f"{what}: boxes, scores and classes differ in length")
    return boxes, scores, classes.astype(np.int64)


def _unpack_gt(g: Any, what: str) -> tuple[np.ndarray, ...]:
    """(boxes, classes[, crowd[, area]]) or a dict with those keys -> arrays."""
    if isinstance(g, Mapping):
        g = (g["boxes"], g["classes"], g.get("iscrowd"), g.get("area"))
    boxes = _boxes(g[0], what)
    classes = _np(g[1], np.float64).reshape(-1).astype(np.int64)
    m = len(boxes)
    crowd = g[2] if len(g) > 2 and g[2] is not None else np.zeros(m, bool)
    crowd = _np(crowd, bool).reshape(-1)
    wh = boxes[:, 2:] - boxes[:, :2]
    area = g[3] if len(g) > 3 and g[3] is not None else wh[:, 0] * wh[:, 1]
    area = _np(area, np.float64).reshape(-1)
    if not m == len(classes) == len(crowd) == len(area):
        raise ValueError(f"{what}: ground-truth boxes, classes, crowd and area differ in length")
    return boxes, classes, crowd, area


def _as_mapping(x: Mapping | Sequence | None) -> Mapping:
    if x is None:
        return {}
    return x if isinstance(x, Mapping) else dict(enumerate(x))


def to_records(
    predictions: Mapping[Any, Any] | Sequence[Any],
    ground_truth: Mapping[Any, Any] | Sequence[Any],
    images: Mapping[Any, Any] | Sequence[Any] | None = None,
) -> list[ImageRecord]:
    """Pair predictions with ground truth per image id.

    predictions: {image_id: Detections | Prediction | (boxes, scores, classes)}; an image
    without an entry has no detections. ground_truth: {image_id: (boxes, classes[, crowd[,
    area]])} covering every evaluated image. images: optional {image_id: image path}. Sequences
    are indexed by position. Boxes are xyxy pixels of the same (original) image.
    """
    preds, gts, paths = _as_mapping(predictions), _as_mapping(ground_truth), _as_mapping(images)
    unknown = [i for i in preds if i not in gts]
    if unknown:
        raise ValueError(f"predictions for image {unknown[0]!r}, which has no ground-truth entry")
    ids = list(gts)
    try:
        ids.sort()
    except TypeError:  # mixed id types: keep the given order
        pass
    empty = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
    out = []
    for i in ids:
        b, s, c = _unpack_pred(preds[i], f"image {i!r}") if i in preds else empty
        gb, gc, crowd, area = _unpack_gt(gts[i], f"image {i!r}")
        path = paths.get(i)
        out.append(
            ImageRecord(i, b, s, c, gb, gc, crowd, area, None if path is None else str(path))
        )
    return out


def score_order(scores: np.ndarray) -> np.ndarray:
    """Descending score, ties in input order (pycocotools' stable mergesort). (N,) -> (N,)."""
    return np.argsort(-scores, kind="stable")


def match_image(
    rec: ImageRecord, iou_thr: float = 0.5, ious: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COCO greedy matching of one image at ``iou_thr`` (class-aware).

    Returns gt_index (N,) int64 (matched ground truth, -1 for none), match_iou (N,) float64
    (0 when unmatched) and ignored (N,) bool (matched to a crowd region).
    ious: the (N, M) :func:`~detforge.boxes.coco_iou_matrix` if already computed.
    """
    n = len(rec.scores)
    gt_index, match_iou = np.full(n, -1, np.int64), np.zeros(n)
    ignored = np.zeros(n, bool)
    if n == 0 or len(rec.gt_classes) == 0:
        return gt_index, match_iou, ignored
    if ious is None:
        ious = coco_iou_matrix(rec.boxes, rec.gt_boxes, rec.gt_crowd)
    thr = min(iou_thr, 1 - 1e-10)  # pycocotools caps thresholds below 1
    ok = (ious >= thr) & (rec.classes[:, None] == rec.gt_classes[None, :])
    taken = np.zeros(len(rec.gt_classes), bool)
    crowd = rec.gt_crowd
    # Rank candidates as COCO does: regular before crowd, then IoU, then later ground truth.
    for d in score_order(rec.scores):
        cand = np.flatnonzero(ok[d] & (crowd | ~taken))
        if cand.size == 0:
            continue
        regular = cand[~crowd[cand]]
        pool = regular if regular.size else cand
        best_iou = ious[d, pool].max()
        g = int(pool[ious[d, pool] == best_iou].max())
        gt_index[d], match_iou[d] = g, ious[d, g]
        if crowd[g]:
            ignored[d] = True
        else:
            taken[g] = True
    return gt_index, match_iou, ignored
