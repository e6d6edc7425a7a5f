"""COCO-style bounding-box evaluator that reproduces pycocotools' ``COCOeval`` (``"bbox"``).

Usage::

    ev = COCOEvaluator(num_classes=K)
    for each image:
        ev.process(image_id, pred_boxes, pred_scores, pred_classes, gt_boxes, gt_classes)
    res = ev.evaluate()   # EvalResult: res.stats["map50_95"], res.per_class[c]["ap50"], ...

Boxes are xyxy pixels (``box_format="ltwh"`` takes COCO json boxes as they are). Semantics follow
pycocotools: the categories are all classes known to the evaluator, the images all processed
images; crowd ground truths and ones outside an area range are ignored; at most ``max(max_dets)``
detections per image and category are kept. The 12 stats, ``precision``/``recall``/``scores``
tables included, match pycocotools to the last bit on the same boxes (see tests/eval).
pycocotools itself is never imported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detforge.eval._coco_accumulate import evaluate_arrays
from detforge.eval._coco_summary import per_class_table, summarize

__all__ = ["COCOEvaluator", "EvalResult", "STAT_KEYS", "DEFAULT_AREA_RANGES"]

STAT_KEYS: tuple[str, ...] = (
    "map50_95", "map50", "map75", "map_small", "map_medium", "map_large",
    "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large",
)  # fmt: skip

#: COCO's area ranges in pixels^2, bounds inclusive (pycocotools uses 0, 32^2, 96^2, 1e5^2).
DEFAULT_AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}


@dataclass
class EvalResult:
    """Output of :meth:`COCOEvaluator.evaluate`.

    ``precision``/``scores`` are (T, R, K, A, M) and ``recall`` (T, K, A, M), laid out exactly as
    pycocotools' ``eval["precision"]`` etc.: T IoU thresholds, R=101 recall thresholds, K classes
    in ``class_ids`` order, A area ranges in ``area_labels`` order, M ``max_dets``; -1 marks
    settings without ground truth.
    """

    stats: dict[str, float]
    per_class: dict[Any, dict[str, float]]
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    class_ids: list[Any]
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    area_labels: tuple[str, ...]
    max_dets: tuple[int, ...]
    num_images: int = 0

    def stats_array(self) -> np.ndarray:
        """(12,) float64 stats in pycocotools' ``COCOeval.stats`` order."""
        return np.array([self.stats[k] for k in STAT_KEYS], dtype=np.float64)


def _to_numpy(x: Any, dtype: Any, name: str) -> np.ndarray:
    """numpy array / torch tensor / sequence / None -> numpy array of ``dtype`` on the CPU."""
    if x is None:
        return np.zeros(0, dtype=dtype)
    if hasattr(x, "detach"):  # a torch tensor; duck-typed so torch is not imported here
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _boxes(x: Any, name: str, box_format: str) -> np.ndarray:
    """(N, 4) xyxy or ltwh -> (N, 4) float64 ltwh, COCO's layout used for the IoU."""
    b = _to_numpy(x, np.float64, name)
    if b.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {tuple(b.shape)}")
    if not np.isfinite(b).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    if box_format == "xyxy":
        # Width as x2 - x1, the same subtraction a COCO json writer does (see cocojson.py).
        b = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)
    return b


def _vector(x: Any, n: int, name: str, dtype: Any) -> np.ndarray:
    """Anything array-like -> (n,) numpy array of ``dtype``; the length must be ``n``."""
    v = _to_numpy(x, dtype, name).reshape(-1)
    if v.shape[0] != n:
        raise ValueError(f"{name} has {v.shape[0]} entries, expected {n}")
    return v


def _classes(x: Any, n: int, name: str) -> np.ndarray:
    """(n,) class ids as int64; float input (a model's class column) must hold whole numbers."""
    c = _to_numpy(x, np.float64 if not hasattr(x, "dtype") else None, name).reshape(-1)
    if c.shape[0] != n:
        raise ValueError(f"{name} has {c.shape[0]} entries, expected {n}")
    if c.dtype.kind == "f":
        if not np.array_equal(c, np.round(c)):
            raise ValueError(f"{name} must hold integer class ids")
    return c.astype(np.int64)


def _check_known(c: np.ndarray, ids: np.ndarray, name: str) -> None:
    """Raise if a class in ``c`` (N,) is not one of the sorted ``ids`` (K,)."""
    if c.size == 0:
        return
    if ids.size == 0:
        raise ValueError(f"{name} has class {int(c[0])}, but the evaluator has no classes")
    pos = np.minimum(np.searchsorted(ids, c), ids.shape[0] - 1)
    bad = ids[pos] != c
    if bad.any():
        raise ValueError(f"{name} has class {int(c[bad][0])}, not one of the evaluator's classes")


class COCOEvaluator:
    """Accumulate per-image predictions and ground truth; compute COCO bbox metrics.

    Args:
        num_classes: classes are ``0 .. num_classes - 1``.
        class_ids: explicit integer class ids (e.g. COCO category ids); exclusive with
            ``num_classes``. With neither, the classes seen in ``process`` calls are used.
        iou_thresholds: (T,) IoU thresholds, default ``linspace(0.5, 0.95, 10)``.
        max_dets: detections kept per image and class for the three recall settings.
        area_ranges: ``{label: (lo, hi)}`` in pixels^2; stats look up "all", "small",
            "medium" and "large" (a missing label gives -1, as in pycocotools).
    """

    def __init__(
        self,
        num_classes: int | None = None,
        class_ids: Sequence[int] | None = None,
        iou_thresholds: Sequence[float] | np.ndarray | None = None,
        max_dets: Sequence[int] = (1, 10, 100),
        area_ranges: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        if num_classes is not None and class_ids is not None:
            raise ValueError("pass num_classes or class_ids, not both")
        if num_classes is not None:
            class_ids = range(int(num_classes))
        self._class_ids = None if class_ids is None else np.unique(np.asarray(class_ids, np.int64))
        if iou_thresholds is None:
            # linspace, not arange: the 0.75 point must equal 0.75 for the map75 lookup.
            iou_thresholds = np.linspace(0.5, 0.95, 10)
        self.iou_thresholds = np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
        self.recall_thresholds = np.linspace(0.0, 1.0, 101)
        self.max_dets = tuple(sorted(int(m) for m in max_dets))
        if len(self.max_dets) != 3:
            raise ValueError(f"max_dets needs 3 values like (1, 10, 100), got {max_dets}")
        ranges = DEFAULT_AREA_RANGES if area_ranges is None else area_ranges
        self.area_labels = tuple(ranges)
        self.area_ranges = np.array([ranges[k] for k in self.area_labels], dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """Forget every processed image."""
        self._image_ids: list[Any] = []
        self._seen: set[Any] = set()
        # Blocks of rows, each: det (image index, ltwh box, score, class), gt (image index,
        # ltwh box, class, crowd, area); image indices point into self._image_ids.
        self._blocks: list[tuple[np.ndarray, ...]] = []

    def process(
        self,
        image_id: Any,
        pred_boxes: Any,
        pred_scores: Any,
        pred_classes: Any,
        gt_boxes: Any,
        gt_classes: Any,
        gt_iscrowd: Any = None,
        gt_areas: Any = None,
        *,
        box_format: str = "xyxy",
    ) -> None:
        """Add one image.

        pred_boxes (N, 4), pred_scores (N,), pred_classes (N,), gt_boxes (M, 4), gt_classes (M,),
        gt_iscrowd (M,) bool/int (default all 0), gt_areas (M,) area used for the area ranges
        (default box width * height). numpy arrays, torch tensors (any device) or sequences.
        Boxes are pixels, xyxy unless ``box_format="ltwh"``.
        """
        if box_format not in ("xyxy", "ltwh"):
            raise ValueError(f"box_format must be 'xyxy' or 'ltwh', got {box_format!r}")
        if hasattr(image_id, "item"):
            image_id = image_id.item()
        db = _boxes(pred_boxes, "pred_boxes", box_format)
        n = db.shape[0]
        ds = _vector(pred_scores, n, "pred_scores", np.float64)
        dc = _classes(pred_classes, n, "pred_classes")
        gb = _boxes(gt_boxes, "gt_boxes", box_format)
        m = gb.shape[0]
        gc = _classes(gt_classes, m, "gt_classes")
        crowd = np.zeros(m, bool)
        if gt_iscrowd is not None:
            crowd = _vector(gt_iscrowd, m, "gt_iscrowd", bool)
        area = gb[:, 2] * gb[:, 3]  # COCO's default: box width * height
        if gt_areas is not None:
            area = _vector(gt_areas, m, "gt_areas", np.float64)
        zero_d, zero_g = np.zeros(n, np.int64), np.zeros(m, np.int64)
        self._add_block([image_id], zero_d, db, ds, dc, zero_g, gb, gc, crowd, area)

    def _add_block(
        self,
        image_ids: list[Any],
        d_img: np.ndarray,
        d_box: np.ndarray,
        d_score: np.ndarray,
        d_cls: np.ndarray,
        g_img: np.ndarray,
        g_box: np.ndarray,
        g_cls: np.ndarray,
        g_crowd: np.ndarray,
        g_area: np.ndarray,
    ) -> None:
        """Add several images at once from flat, already validated arrays (used by cocojson).

        d_img (N,) / g_img (M,) index into ``image_ids``; boxes (N, 4) / (M, 4) ltwh float64;
        d_score (N,) float64; d_cls (N,), g_cls (M,) int64; g_crowd (M,) bool; g_area (M,).
        Rows of one image keep their relative order (it decides ties, as in pycocotools).
        """
        fresh = set(image_ids)
        if len(fresh) != len(image_ids) or not fresh.isdisjoint(self._seen):
            dup = next(i for n, i in enumerate(image_ids) if i in self._seen or i in image_ids[:n])
            raise ValueError(f"image_id {dup!r} was already processed")
        if self._class_ids is not None:
            _check_known(d_cls, self._class_ids, "pred_classes")
            _check_known(g_cls, self._class_ids, "gt_classes")
        offset = len(self._image_ids)
        self._seen |= fresh
        self._image_ids.extend(image_ids)
        self._blocks.append(
            (d_img + offset, d_box, d_score, d_cls, g_img + offset, g_box, g_cls, g_crowd, g_area)
        )

    def _image_ranks(self) -> np.ndarray:
        """(I,) position of each processed image in sorted id order (pycocotools' image order)."""
        n = len(self._image_ids)
        try:
            order = sorted(range(n), key=self._image_ids.__getitem__)
        except TypeError:  # ids of mixed types: keep the processing order
            order = list(range(n))
        ranks = np.empty(n, dtype=np.int64)
        ranks[order] = np.arange(n)
        return ranks

    def evaluate(self) -> EvalResult:
        """Match, accumulate and summarise everything processed so far."""
        n_img = len(self._image_ids)
        cols = list(zip(*self._blocks, strict=True)) if self._blocks else None
        empty = [(0,), (0, 4), (0,), (0,), (0,), (0, 4), (0,), (0,), (0,)]
        kinds = [np.int64, float, float, np.int64, np.int64, float, np.int64, bool, float]
        arrays = [
            np.concatenate(cols[i]) if cols else np.zeros(empty[i], kinds[i]) for i in range(9)
        ]
        d_img, d_box, d_score, d_cls, g_img, g_box, g_cls, g_crowd, g_area = arrays
        rank = self._image_ranks()  # pycocotools visits images in sorted id order
        class_ids = self._class_ids
        if class_ids is None:
            class_ids = np.union1d(d_cls, g_cls)
        d_k, g_k = np.searchsorted(class_ids, d_cls), np.searchsorted(class_ids, g_cls)
        n_cat = class_ids.shape[0]
        tables = evaluate_arrays(
            (rank[d_img], d_box, d_score, d_k), (rank[g_img], g_box, g_k, g_crowd, g_area),
            n_img, n_cat, self.iou_thresholds, self.area_ranges, self.max_dets,
            self.recall_thresholds,
        )  # fmt: skip
        precision, recall, scores = tables
        stats = summarize(precision, recall, self.iou_thresholds, self.area_labels, self.max_dets)
        # Per-class counts over non-crowd ground truth: boxes, and images holding one.
        real = ~g_crowd
        num_gt = np.bincount(g_k[real], minlength=n_cat)
        pairs = np.unique(g_k[real] * max(n_img, 1) + g_img[real])
        num_images = np.bincount(pairs // max(n_img, 1), minlength=n_cat)
        ids = [int(c) for c in class_ids]
        per_class = per_class_table(
            precision, recall, self.iou_thresholds, self.area_labels, ids, num_gt, num_images
        )
        return EvalResult(
            stats=dict(zip(STAT_KEYS, stats, strict=True)),
            per_class=per_class,
            precision=precision,
            recall=recall,
            scores=scores,
            class_ids=ids,
            iou_thresholds=self.iou_thresholds.copy(),
            recall_thresholds=self.recall_thresholds.copy(),
            area_labels=self.area_labels,
            max_dets=self.max_dets,
            num_images=n_img,
        )
