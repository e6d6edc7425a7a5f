"""COCO json scoring: score a results file, export predictions, print stats.

Reading files and building ground truth are in :mod:`detforge.data.cocofmt` (the converters
need them too); the atomic json writer is :func:`detforge.utils.atomic.write_json_atomic`.

Readers take COCO instances json (``images``, ``annotations``, ``categories``; ids may be ints
or strings) and COCO results json (a list of ``{image_id, category_id, bbox, score}``, boxes
``[left, top, width, height]`` in pixels) and feed :class:`~detforge.eval.coco.COCOEvaluator`
with the boxes exactly as written, so the numbers equal pycocotools' on the same files.

Writers use ``category_id = class index + 1`` (COCO's 1-based habit; Ultralytics does the same
for non-COCO data) and write every float unrounded: Python's json writes the shortest text that
reads back as the same float64, so a round trip through json cannot change a stat.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from detforge.boxes import xyxy_to_ltwh_np
from detforge.data.cocofmt import COCOJsonError, as_float64, load_json
from detforge.eval.coco import STAT_KEYS, COCOEvaluator, EvalResult

__all__ = ["evaluate_coco", "evaluate_coco_json", "coco_predictions", "format_stats_table"]


def _column(entries: list, key: str, what: str) -> list:
    """``[e[key] for e in entries]`` with an error naming the key and the first bad index."""
    try:
        return list(map(itemgetter(key), entries))
    except (KeyError, TypeError, IndexError):
        for i, e in enumerate(entries):
            if not isinstance(e, dict):
                raise COCOJsonError(f"{what}[{i}] is not an object: {e!r:.80}") from None
            if key not in e:
                raise COCOJsonError(f"{what}[{i}] has no '{key}' key") from None
        raise


def _bboxes(raw: list, what: str) -> np.ndarray:
    """List of ``[l, t, w, h]`` -> (N, 4) float64, naming the first malformed entry."""
    try:
        b = np.array(raw, dtype=np.float64)
        if b.ndim == 2 and b.shape[1] == 4 or b.size == 0:
            if not np.isfinite(b).all():
                n = int(np.flatnonzero(~np.isfinite(b).all(axis=1))[0])
                raise COCOJsonError(f"{what}[{n}]['bbox'] is not finite: {raw[n]!r}")
            return b.reshape(-1, 4)
    except (TypeError, ValueError) as e:
        if isinstance(e, COCOJsonError):
            raise
    for i, bb in enumerate(raw):
        if not isinstance(bb, list | tuple) or len(bb) != 4:
            raise COCOJsonError(f"{what}[{i}]['bbox'] must be [left, top, width, height]: {bb!r}")
    raise COCOJsonError(f"{what} has a bbox with non-numeric values")


def _ids(entries: list, key: str, index: dict, what: str, source: str) -> np.ndarray:
    """Map ``e[key]`` through ``index``; an unknown id raises an error naming it and its entry."""
    ids, kind = _column(entries, key, what), key
    try:
        return np.array(list(map(index.__getitem__, ids)), dtype=np.int64).reshape(-1)
    except (KeyError, TypeError):
        for n, i in enumerate(ids):
            try:
                known = i in index
            except TypeError:  # unhashable, e.g. a list
                known = False
            if not known:
                raise COCOJsonError(
                    f"{what}[{n}] has {kind} {i!r}, which is not in the ground truth's {source}"
                ) from None
        raise


def evaluate_coco(gt: dict, results: list, **evaluator_kwargs: Any) -> EvalResult:
    """Score COCO results against COCO ground truth held in memory.

    gt: COCO instances dict; results: list of result dicts. Extra keyword arguments go to
    :class:`COCOEvaluator` (e.g. ``iou_thresholds``). ``class_ids`` of the returned result and
    the keys of ``per_class`` are the json's category ids, in sorted order (as pycocotools).
    """
    if not isinstance(gt, dict):
        raise COCOJsonError("ground truth must be a json object with images/annotations/categories")
    for key in ("images", "annotations", "categories"):
        if key not in gt:
            raise COCOJsonError(f"ground truth has no '{key}' key")
    if not isinstance(results, list):
        raise COCOJsonError(
            "predictions must be a json list of {image_id, category_id, bbox, score}"
        )
    image_ids = _column(gt["images"], "id", "images")
    try:
        img_index = {i: n for n, i in enumerate(image_ids)}
    except TypeError:
        raise COCOJsonError("image ids must be ints or strings") from None
    if len(img_index) != len(image_ids):
        dup = next(i for n, i in enumerate(image_ids) if img_index[i] != n)
        raise COCOJsonError(f"ground truth lists image id {dup!r} more than once")
    try:
        cat_ids = sorted(set(_column(gt["categories"], "id", "categories")))
    except TypeError:
        raise COCOJsonError("category ids must be all ints or all strings") from None
    cat_index = {c: n for n, c in enumerate(cat_ids)}

    anns = gt["annotations"]
    g_img = _ids(anns, "image_id", img_index, "annotations", "images")
    g_cat = _ids(anns, "category_id", cat_index, "annotations", "categories")
    g_box = _bboxes(_column(anns, "bbox", "annotations"), "annotations")
    # pycocotools needs 'area' and 'iscrowd'; files without them get w*h and 0.
    g_area = np.array([a.get("area", np.nan) for a in anns], dtype=np.float64)
    no_area = np.isnan(g_area)
    g_area[no_area] = (g_box[:, 2] * g_box[:, 3])[no_area]
    g_crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool)

    d_img = _ids(results, "image_id", img_index, "predictions", "images")
    d_cat = _ids(results, "category_id", cat_index, "predictions", "categories")
    d_box = _bboxes(_column(results, "bbox", "predictions"), "predictions")
    raw_scores = _column(results, "score", "predictions")
    try:
        d_score = np.array(raw_scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise COCOJsonError("predictions have a non-numeric 'score'") from None

    ev = COCOEvaluator(class_ids=range(len(cat_ids)), **evaluator_kwargs)
    # One bulk add instead of a process() call per image; rows keep their file order.
    ev._add_block(image_ids, d_img, d_box, d_score, d_cat, g_img, g_box, g_cat, g_crowd, g_area)
    res = ev.evaluate()
    per_class = {cat_ids[k]: v for k, v in res.per_class.items()}
    return dataclasses.replace(res, class_ids=list(cat_ids), per_class=per_class)


def evaluate_coco_json(
    gt_path: str | os.PathLike[str], pred_path: str | os.PathLike[str], **evaluator_kwargs: Any
) -> EvalResult:
    """Score a COCO results json file against a COCO ground-truth json file."""
    return evaluate_coco(load_json(gt_path), load_json(pred_path), **evaluator_kwargs)


def coco_predictions(
    image_ids: Sequence[Any], boxes: Sequence[Any], scores: Sequence[Any], classes: Sequence[Any]
) -> list[dict]:
    """COCO results list from per-image predictions.

    image_ids: (B,) ids; boxes: B arrays (n_i, 4) xyxy pixels; scores, classes: B arrays (n_i,).
    category_id = class + 1; bbox = [x1, y1, x2 - x1, y2 - y1]; nothing is rounded.
    """
    if not len(image_ids) == len(boxes) == len(scores) == len(classes):
        raise ValueError("image_ids, boxes, scores and classes must have one entry per image")
    out = []
    for image_id, b, s, c in zip(image_ids, boxes, scores, classes, strict=True):
        if hasattr(image_id, "item"):
            image_id = image_id.item()
        bb = xyxy_to_ltwh_np(as_float64(b)).tolist()
        ss, cc = as_float64(s).reshape(-1).tolist(), as_float64(c).reshape(-1)
        if not len(bb) == len(ss) == len(cc):
            raise ValueError(f"image {image_id!r}: boxes, scores and classes differ in length")
        for box, score, cls in zip(bb, ss, (cc.astype(np.int64) + 1).tolist(), strict=True):
            out.append({"image_id": image_id, "category_id": cls, "bbox": box, "score": score})
    return out


_STAT_LINES = [
    # (AP or AR, IoU text, area label, max dets)
    ("AP", "0.50:0.95", "all", 100), ("AP", "0.50", "all", 100), ("AP", "0.75", "all", 100),
    ("AP", "0.50:0.95", "small", 100), ("AP", "0.50:0.95", "medium", 100),
    ("AP", "0.50:0.95", "large", 100), ("AR", "0.50:0.95", "all", 1),
    ("AR", "0.50:0.95", "all", 10), ("AR", "0.50:0.95", "all", 100),
    ("AR", "0.50:0.95", "small", 100), ("AR", "0.50:0.95", "medium", 100),
    ("AR", "0.50:0.95", "large", 100),
]  # fmt: skip


def format_stats_table(stats: dict[str, float]) -> str:
    """The 12 stats as the familiar pycocotools ``summarize()`` lines (12 lines, no newline)."""
    lines = []
    for key, (kind, iou, area, md) in zip(STAT_KEYS, _STAT_LINES, strict=True):
        title = "Average Precision  (AP)" if kind == "AP" else "Average Recall     (AR)"
        lines.append(
            f" {title} @[ IoU={iou:<9} | area={area:>6} | maxDets={md:>3} ] = {stats[key]:0.3f}"
        )
    return "\n".join(lines)
