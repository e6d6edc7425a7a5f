"""The 12 COCO summary numbers and per-class figures from the accumulated tables.

Means are taken over the entries > -1 of the same slice pycocotools selects, flattened in the
same (C) order, so numpy's pairwise summation gives the very same float.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _mean_defined(x: np.ndarray) -> float:
    """Mean over entries > -1, or -1.0 if there are none (pycocotools' convention)."""
    v = x[x > -1]
    return float(np.mean(v)) if v.size else -1.0


def _index(values: Sequence[Any] | np.ndarray, wanted: Any) -> list[int]:
    """Positions where ``values == wanted`` (exact equality, like pycocotools)."""
    return [i for i, v in enumerate(values) if v == wanted]


def _select(
    table: np.ndarray,
    iou_thresholds: np.ndarray,
    area_labels: Sequence[str],
    max_dets: Sequence[int],
    iou: float | None,
    area: str,
    max_det: int,
) -> np.ndarray:
    """Slice (T[, R], K, A, M) down to one IoU (or all), one area label and one max-dets value."""
    t = slice(None) if iou is None else _index(iou_thresholds, iou)
    a, m = _index(area_labels, area), _index(max_dets, max_det)
    if not a or not m:
        return np.zeros(0)
    sub = table[t]
    return sub[..., a[0], m[0]]


def summarize(
    precision: np.ndarray,
    recall: np.ndarray,
    iou_thresholds: np.ndarray,
    area_labels: Sequence[str],
    max_dets: Sequence[int],
) -> list[float]:
    """The 12 stats in pycocotools order (AP x6, AR x6). precision (T,R,K,A,M), recall (T,K,A,M)."""
    big = max_dets[2]
    # pycocotools' first stat uses its default maxDets=100, not max_dets[2]: with custom
    # max_dets lacking 100 it is -1 there, and so here.
    ap_settings = [(None, "all", 100), (0.5, "all", big), (0.75, "all", big)]
    ap_settings += [(None, size, big) for size in ("small", "medium", "large")]
    ar_settings = [(None, "all", md) for md in max_dets[:3]]
    ar_settings += [(None, size, big) for size in ("small", "medium", "large")]
    out = [
        _mean_defined(_select(precision, iou_thresholds, area_labels, max_dets, *s))
        for s in ap_settings
    ]
    out += [
        _mean_defined(_select(recall, iou_thresholds, area_labels, max_dets, *s))
        for s in ar_settings
    ]
    return out


def per_class_table(
    precision: np.ndarray,
    recall: np.ndarray,
    iou_thresholds: np.ndarray,
    area_labels: Sequence[str],
    class_ids: Sequence[Any],
    num_gt: np.ndarray,
    num_images: np.ndarray,
) -> dict[Any, dict[str, float]]:
    """{class id: ap50_95, ap50, ap75, ap_small/medium/large, ar100, num_gt, num_images}.

    AP/AR use the largest max-dets setting; -1 where the class has no ground truth there.
    num_gt counts non-crowd boxes, num_images the images holding at least one of them.
    """
    m = precision.shape[-1] - 1
    areas = {lbl: i for i, lbl in reversed(list(enumerate(area_labels)))}
    t50, t75 = _index(iou_thresholds, 0.5), _index(iou_thresholds, 0.75)
    table: dict[Any, dict[str, float]] = {}
    for k, cid in enumerate(class_ids):

        def ap(t: Any, area: str, k: int = k) -> float:
            if area not in areas:
                return -1.0
            return _mean_defined(precision[t][..., k, areas[area], m])

        table[cid] = {
            "ap50_95": ap(slice(None), "all"),
            "ap50": ap(t50, "all"),
            "ap75": ap(t75, "all"),
            "ap_small": ap(slice(None), "small"),
            "ap_medium": ap(slice(None), "medium"),
            "ap_large": ap(slice(None), "large"),
            "ar100": _mean_defined(recall[:, k, areas["all"], m]) if "all" in areas else -1.0,
            "num_gt": int(num_gt[k]),
            "num_images": int(num_images[k]),
        }
    return table
