"""``explain``: what lies beyond the 12 COCO stats, as PNG plots plus CSV / JSON.

P / R / F1 at the best-mean-F1 confidence (and at a user threshold), the mean IoU of matches,
a per-class table (images, instances, P, R, F1, AP50, AP50-95, APsmall), PR curves from the
evaluator's own precision table, F1 / P / R against confidence, the confusion matrix with a
background row and column, and a few images with their boxes. The matching rules are in
:mod:`detforge.eval.metrics`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..eval._match import ImageRecord, match_image, to_records
from ..eval.coco import EvalResult
from ..eval.metrics import (
    ConfidenceCurves,
    confidence_curves,
    confusion_matrix,
    match_table,
    mean_matched_iou,
    prf_at,
)
from ._io import write_csv, write_json

__all__ = ["explain"]


def _pr_table(result: EvalResult, iou: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """recall thresholds (R,), precision (K, R) (NaN rows: no ground truth), AP (K,) at IoU
    ``iou`` (0.5 if the evaluator lacks it), area "all", the largest max-dets setting."""
    t = np.flatnonzero(np.isclose(result.iou_thresholds, iou))
    t = t if t.size else np.flatnonzero(np.isclose(result.iou_thresholds, 0.5))
    p = result.precision[t[0], :, :, result.area_labels.index("all"), -1].T.copy()
    p[p < 0] = np.nan
    defined = ~np.all(np.isnan(p), axis=1)
    ap = np.full(len(p), np.nan)
    ap[defined] = p[defined].mean(axis=1)
    return result.recall_thresholds, p, ap, float(result.iou_thresholds[t[0]])


def _write_pr(out: Path, result: EvalResult, names: list[str], iou: float) -> None:
    from .curves import plot_pr_curves

    recall, prec, ap, iou_used = _pr_table(result, iou)
    plot_pr_curves(recall, prec, ap, names, out / "pr_curve.png", iou_used)
    defined = ~np.all(np.isnan(prec), axis=1)
    mean = prec[defined].mean(axis=0) if defined.any() else np.full(len(recall), np.nan)
    rows = []
    for i, r in enumerate(recall):
        row = {"recall": float(r), "all": float(mean[i])}
        row.update({n: float(prec[c, i]) for c, n in enumerate(names)})
        rows.append(row)
    write_csv(out / "pr_curve.csv", rows)


def _write_conf_curves(out: Path, cv: ConfidenceCurves, names: list[str]) -> None:
    from .curves import plot_conf_curve

    curves = {"f1": ("F1", cv.f1), "p": ("Precision", cv.precision), "r": ("Recall", cv.recall)}
    for key, (label, vals) in curves.items():
        plot_conf_curve(
            cv.conf, vals, cv.mean(vals), names, label, out / f"{key}_curve.png", cv.best
        )
    means = {key: cv.mean(vals) for key, (_, vals) in curves.items()}
    rows = []
    for i, c in enumerate(cv.conf):
        row = {"conf": float(c), "precision": float(means["p"][i])}
        row.update({"recall": float(means["r"][i]), "f1": float(means["f1"][i])})
        row.update({f"f1/{n}": float(cv.f1[j, i]) for j, n in enumerate(names)})
        rows.append(row)
    write_csv(out / "conf_curves.csv", rows)


def _write_confusion(out: Path, records, names: list[str], conf: float, iou: float) -> dict:
    from .curves import plot_confusion

    mat = confusion_matrix(records, len(names), conf, iou)
    labels = [*names, "background"]
    rows = [
        {"true/predicted": labels[i], **dict(zip(labels, map(int, row), strict=True))}
        for i, row in enumerate(mat)
    ]
    write_csv(out / "confusion_matrix.csv", rows)
    title = f"Confusion matrix (conf {conf:.3f}, IoU {iou:g})"
    plot_confusion(mat, names, out / "confusion_matrix.png", title=title)
    plot_confusion(mat, names, out / "confusion_matrix_normalized.png", True, title)
    return {"conf": conf, "iou": iou, "labels": labels, "matrix": mat.tolist()}


def _samples(records: list[ImageRecord], names, out: Path, conf: float, iou: float, n: int):
    """Draw ``n`` images spread over the set: ground truth green, TP blue, FP red (>= conf)."""
    from ..data.images import read_image
    from .draw import FP_COLOR, GT_COLOR, TP_COLOR, draw_boxes, fit_width, write_image

    usable = [r for r in records if r.path and len(r.gt_classes)] or [r for r in records if r.path]
    if not usable or n <= 0:
        return []
    picks = np.unique(np.linspace(0, len(usable) - 1, n).round().astype(int))
    files = []
    for j, rec in enumerate(usable[i] for i in picks):
        gt_index, _, ignored = match_image(rec, iou)
        img, s = fit_width(read_image(rec.path), 640)
        draw_boxes(img, rec.gt_boxes * s, GT_COLOR, [names[c] for c in rec.gt_classes], 2)
        shown = (rec.scores >= conf) & ~ignored
        for sel, color in ((shown & (gt_index >= 0), TP_COLOR), (shown & (gt_index < 0), FP_COLOR)):
            cls, sc = rec.classes[sel], rec.scores[sel]
            labels = [f"{names[c]} {v:.2f}" for c, v in zip(cls, sc, strict=True)]
            draw_boxes(img, rec.boxes[sel] * s, color, labels)
        name = f"samples/{j:02d}_{Path(rec.path).stem}.jpg"
        write_image(out / name, img)
        files.append(name)
    return files


def _per_class(
    result: EvalResult, cv: ConfidenceCurves, names: list[str], at: tuple | None
) -> list[dict[str, Any]]:
    b, rows = cv.best, []
    for c, name in enumerate(names):
        pc = result.per_class.get(result.class_ids[c], {}) if c < len(result.class_ids) else {}
        row = {
            "class": name,
            "images": int(pc.get("num_images", 0)),
            "instances": int(cv.n_gt[c]),
            "precision": float(cv.precision[c, b]),
            "recall": float(cv.recall[c, b]),
            "f1": float(cv.f1[c, b]),
            "ap50": pc.get("ap50", -1.0),
            "ap50_95": pc.get("ap50_95", -1.0),
            "ap_small": pc.get("ap_small", -1.0),
        }
        if at is not None:
            row.update(
                {
                    "precision@conf": float(at[0][c]),
                    "recall@conf": float(at[1][c]),
                    "f1@conf": float(at[2][c]),
                }
            )
        rows.append(row)
    return rows


def explain(
    result: EvalResult,
    predictions: Mapping[Any, Any] | Sequence[Any],
    ground_truth: Mapping[Any, Any] | Sequence[Any],
    names: Sequence[str],
    out_dir: str | os.PathLike,
    conf: float | None = None,
    iou: float = 0.5,
    images: Mapping[Any, Any] | Sequence[Any] | None = None,
    samples: int = 6,
) -> dict[str, Any]:
    """Write the analysis files into ``out_dir`` and return the ``metrics.json`` dict.

    result: the evaluator's result on the same data (PR curves, AP columns); predictions:
    {image_id: Detections | Prediction | (boxes (N, 4) xyxy, scores (N,), classes (N,))};
    ground_truth: {image_id: (boxes (M, 4) xyxy, classes (M,)[, iscrowd[, area]])}, same
    pixels; classes 0 .. len(names) - 1 in ``result.class_ids`` order; images: {image_id:
    path} for the sample drawings; conf: a user threshold, also used by the confusion matrix
    and the samples (default: the best-mean-F1 confidence); iou: the matching IoU.
    Returned keys: stats (the 12), metrics {precision, recall, f1, mean_iou, conf,
    mean_iou_at_conf}, at_conf (None without ``conf``), per_class (rows), confusion, samples.
    Files: metrics.json, per_class.csv, pr_curve.png/.csv, f1_curve.png, p_curve.png,
    r_curve.png, conf_curves.csv, confusion_matrix.png/.csv, confusion_matrix_normalized.png,
    samples/*.jpg.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(names)
    records = to_records(predictions, ground_truth, images)
    table = match_table(records, len(names), iou)
    cv = confidence_curves(table)
    best_conf = float(cv.conf[cv.best])
    metrics = {
        "precision": float(cv.mean(cv.precision)[cv.best]),
        "recall": float(cv.mean(cv.recall)[cv.best]),
        "f1": float(cv.mean(cv.f1)[cv.best]),
        "mean_iou": mean_matched_iou(table),
        "conf": best_conf,
        "mean_iou_at_conf": mean_matched_iou(table, best_conf),
    }
    at = None if conf is None else prf_at(table, float(conf))
    at_conf = None
    if at is not None:
        at_conf = {
            "conf": float(conf),
            "precision": float(cv.mean(at[0])),
            "recall": float(cv.mean(at[1])),
            "f1": float(cv.mean(at[2])),
            "mean_iou": mean_matched_iou(table, float(conf)),
        }
    used = best_conf if conf is None else float(conf)
    _write_pr(out, result, names, iou)
    _write_conf_curves(out, cv, names)
    per_class = _per_class(result, cv, names, at)
    write_csv(out / "per_class.csv", per_class)
    summary = {
        "stats": dict(result.stats),
        "metrics": metrics,
        "at_conf": at_conf,
        "iou": iou,
        "per_class": per_class,
        "confusion": _write_confusion(out, records, names, used, iou),
        "samples": _samples(records, names, out, used, iou, samples if images else 0),
    }
    write_json(out / "metrics.json", summary)
    return summary
