"""TIDE-style error analysis: which errors cost how much AP50, for which classes and sizes.

``diagnose(predictions, ground_truth, names, out_dir)`` writes into ``out_dir``:
``diagnosis.json`` (everything below), ``diagnosis_per_class.csv``, ``diagnosis_sizes.csv``,
``diagnosis.png`` (dAP per error type) and, when image paths are known, ``gallery/*.jpg``: the
images with the most misses + false positives at confidence ``conf``, ground truth green, true
positives blue, false positives red. The error types, oracles and AP follow Bolya et al. (ECCV
2020); see :mod:`detforge.eval._tide` for the exact rules. Sizes are COCO's area ranges of the
object concerned: the ground truth for Miss, and the target ground truth for Cls / Loc / Dupe;
the detection box for Both / Bkg, which have none.

Longer than the ~300-line guide: files, tables, the dAP plot and the gallery of one
analysis are written together (the error classification itself is in eval/_tide.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..eval._match import ImageRecord, to_records
from ..eval._tide import (
    _DET_TYPES,
    ERROR_TYPES,
    TideData,
    classify,
    delta_ap,
    mean_defined,
    oracle_ap,
)
from ..eval.coco import DEFAULT_AREA_RANGES, COCOEvaluator
from ._io import write_csv, write_json

__all__ = ["ERROR_TYPES", "diagnose", "diagnose_records", "diagnose_coco_json", "format_diagnosis"]

SIZES = ("small", "medium", "large")


def _size_index(area: np.ndarray) -> np.ndarray:
    """(N,) areas -> (N,) 0/1/2 for small/medium/large (COCO bounds, upper bound inclusive)."""
    return np.searchsorted(
        [DEFAULT_AREA_RANGES["small"][1], DEFAULT_AREA_RANGES["medium"][1]], area, side="left"
    )


def _ap50_by_size(records: list[ImageRecord], k: int) -> dict[str, float]:
    """COCO AP50 per area range label, from the evaluator itself."""
    ev = COCOEvaluator(num_classes=k, iou_thresholds=[0.5])
    for r in records:
        ev.process(
            r.image_id,
            r.boxes,
            r.scores,
            r.classes,
            r.gt_boxes,
            r.gt_classes,
            r.gt_crowd,
            r.gt_area,
        )
    res = ev.evaluate()
    out = {}
    for a, label in enumerate(res.area_labels):
        p = res.precision[0, :, :, a, -1]
        out[label] = float(p[p > -1].mean()) if (p > -1).any() else -1.0
    return out


def _sizes(t: TideData, ap50: Mapping[str, float]) -> list[dict[str, Any]]:
    """Per COCO size: ground truths, matched, missed, recall, AP50 and error counts."""
    g_size = _size_index(t.g_area)
    d_wh = t.d_box[:, 2:] - t.d_box[:, :2]
    d_size = _size_index(d_wh[:, 0] * d_wh[:, 1])
    has = t.d_target >= 0
    d_size[has] = g_size[t.d_target[has]]
    real = ~t.g_crowd
    rows = []
    for s, label in enumerate(SIZES):
        g = real & (g_size == s)
        row = {"size": label, "instances": int(g.sum()), "matched": int((g & t.g_matched).sum())}
        row["recall50"] = row["matched"] / row["instances"] if row["instances"] else -1.0
        row["ap50"] = ap50.get(label, -1.0)
        for code, name in enumerate(_DET_TYPES):
            row[name] = int(((t.d_err == code) & (d_size == s)).sum())
        row["miss"] = int((g & t.g_missed).sum())
        rows.append(row)
    return rows


def _per_class(t: TideData, aps: dict[str, np.ndarray], names: Sequence[str]) -> list[dict]:
    rows = []
    base = aps["base"]
    for k, name in enumerate(names):
        row: dict[str, Any] = {"class": name, "instances": int(t.n_gt()[k]), "ap50": base[k]}
        for e in ERROR_TYPES:
            row[f"dap_{e}"] = aps[e][k] - base[k] if base[k] > -1 and aps[e][k] > -1 else 0.0
        for code, e in enumerate(_DET_TYPES):
            row[e] = int(((t.d_err == code) & (t.d_cls == k)).sum())
        row["miss"] = int((t.g_missed & (t.g_cls == k)).sum())
        gains = {e: row[f"dap_{e}"] for e in ERROR_TYPES}
        row["main_error"] = max(gains, key=gains.get) if max(gains.values()) > 0 else ""
        rows.append(row)
    return rows


def _worst_images(t: TideData, n_images: int, conf: float) -> list[tuple[int, int, int]]:
    """(image index, missed, false positives) at confidence ``conf``, worst first, > 0 only."""
    shown = t.d_score >= conf
    fp = np.bincount(t.d_img[shown & ~t.d_tp & ~t.d_ignored], minlength=n_images)
    found = np.zeros(len(t.g_cls), bool)
    found[t.d_match[shown & t.d_tp]] = True
    missed = np.bincount(t.g_img[~found & ~t.g_crowd], minlength=n_images)
    bad = missed + fp
    order = np.argsort(-bad, kind="stable")
    return [(int(i), int(missed[i]), int(fp[i])) for i in order if bad[i] > 0]


def _gallery(
    t: TideData,
    records: list[ImageRecord],
    names: Sequence[str],
    out_dir: Path,
    conf: float,
    n: int,
) -> list[dict[str, Any]]:
    """Draw the ``n`` images with the most misses + false positives at ``conf``."""
    from ..data.images import read_image
    from .draw import FP_COLOR, GT_COLOR, TP_COLOR, draw_boxes, fit_width, write_image

    worst = [w for w in _worst_images(t, len(records), conf) if records[w[0]].path][:n]
    shown = t.d_score >= conf
    out = []
    for rank, (i, missed, fps) in enumerate(worst):
        rec = records[i]
        img, s = fit_width(read_image(rec.path), 800)
        real = ~rec.gt_crowd
        gt_labels = [names[c] for c in rec.gt_classes[real]]
        draw_boxes(img, rec.gt_boxes[real] * s, GT_COLOR, gt_labels, 2)
        mine = (t.d_img == i) & shown & ~t.d_ignored
        for sel, color in ((mine & t.d_tp, TP_COLOR), (mine & ~t.d_tp, FP_COLOR)):
            errs = [_DET_TYPES[e] if e >= 0 else "" for e in t.d_err[sel]]
            labels = [
                f"{names[c]} {sc:.2f} {e}".strip()
                for c, sc, e in zip(t.d_cls[sel], t.d_score[sel], errs, strict=True)
            ]
            draw_boxes(img, t.d_box[sel] * s, color, labels)
        name = f"{rank:02d}_{Path(rec.path).stem}.jpg"
        write_image(out_dir / "gallery" / name, img)
        out.append(
            {
                "image_id": rec.image_id,
                "path": rec.path,
                "missed": missed,
                "false_positives": fps,
                "file": f"gallery/{name}",
            }
        )
    return out


def diagnose_records(
    records: list[ImageRecord],
    names: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    conf: float = 0.25,
    t_f: float = 0.5,
    t_b: float = 0.1,
    max_dets: int = 100,
    gallery: int = 8,
) -> dict[str, Any]:
    """:func:`diagnose` on already paired :class:`ImageRecord` s (classes 0 .. len(names)-1)."""
    from ..eval.metrics import check_classes
    from .curves import plot_bars

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    k = len(names)
    check_classes(records, k)
    t = classify(records, k, t_f, t_b, max_dets)
    aps = oracle_ap(t)
    base = mean_defined(aps["base"])
    dap = delta_ap(aps)
    counts = {e: int((t.d_err == c).sum()) for c, e in enumerate(_DET_TYPES)}
    counts["miss"] = int(t.g_missed.sum())
    ap50_size = _ap50_by_size(records, k)
    per_class = _per_class(t, aps, names)
    sizes = _sizes(t, ap50_size)
    worst = _worst_images(t, len(records), conf)
    summary: dict[str, Any] = {
        "map50": base,
        "dap": {e: dap[e] for e in ERROR_TYPES},
        "special_dap": {"false_positives": dap["fp"], "false_negatives": dap["fn"]},
        "counts": counts,
        "true_positives": int(t.d_tp.sum()),
        "false_positives": int((~t.d_tp & ~t.d_ignored).sum()),
        "false_negatives": int((~t.g_matched & ~t.g_crowd).sum()),
        "at_conf": {
            "conf": conf,
            "true_positives": int((t.d_tp & (t.d_score >= conf)).sum()),
            "false_positives": int(sum(w[2] for w in worst)),
            "false_negatives": int(sum(w[1] for w in worst)),
        },
        "per_class": per_class,
        "worst_classes": [
            r["class"] for r in sorted(per_class, key=lambda r: r["ap50"]) if r["instances"] > 0
        ],
        "sizes": sizes,
        "worst_sizes": [
            r["size"] for r in sorted(sizes, key=lambda r: r["ap50"]) if r["instances"] > 0
        ],
        "thresholds": {"t_f": t_f, "t_b": t_b, "max_dets": max_dets},
        "worst_images": [
            {
                "image_id": records[i].image_id,
                "path": records[i].path,
                "missed": m,
                "false_positives": f,
            }
            for i, m, f in worst[:50]
        ],
    }
    summary["gallery"] = _gallery(t, records, names, out, conf, gallery) if gallery else []
    labels = ["Cls", "Loc", "Both", "Dupe", "Bkg", "Miss", "FP", "FN"]
    values = [dap[e] * 100 for e in (*ERROR_TYPES, "fp", "fn")]
    colors = ["#d62728", "#ff7f0e", "#8c564b", "#9467bd", "#7f7f7f", "#1f77b4", "#444", "#444"]
    plot_bars(
        labels,
        values,
        out / "diagnosis.png",
        f"AP50 gained by fixing each error type (baseline {base * 100:.1f})",
        "dAP50 (points)",
        colors,
    )
    write_csv(out / "diagnosis_per_class.csv", per_class)
    write_csv(out / "diagnosis_sizes.csv", sizes)
    summary["files"] = {
        "json": "diagnosis.json",
        "plot": "diagnosis.png",
        "per_class": "diagnosis_per_class.csv",
        "sizes": "diagnosis_sizes.csv",
    }
    write_json(out / "diagnosis.json", summary)
    return summary


def diagnose(
    predictions: Mapping[Any, Any] | Sequence[Any],
    ground_truth: Mapping[Any, Any] | Sequence[Any],
    names: Sequence[str],
    out_dir: str | os.PathLike,
    images: Mapping[Any, Any] | Sequence[Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """TIDE-style diagnosis of predictions against ground truth; writes files into ``out_dir``.

    predictions: {image_id: Detections | Prediction | (boxes (N, 4) xyxy, scores (N,),
    classes (N,))} in original pixels; ground_truth: {image_id: (boxes (M, 4) xyxy, classes
    (M,)[, iscrowd (M,)[, area (M,)]])} for every image; names: class names (class i =
    names[i]); images: {image_id: image path} for the gallery (optional). Keyword options:
    conf (0.25, gallery and ``at_conf`` counts), t_f (0.5), t_b (0.1), max_dets (100 per image
    and class, as COCO), gallery (8 images, 0 for none). Returns the ``diagnosis.json`` dict:
    map50, dap {cls, loc, both, dupe, bkg, miss}, special_dap, counts, per_class, sizes, ...
    """
    return diagnose_records(to_records(predictions, ground_truth, images), names, out_dir, **kwargs)


def diagnose_coco_json(
    gt_path: str | os.PathLike,
    pred_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    image_dir: str | os.PathLike | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`diagnose` from a COCO results file and COCO ground truth (``iscrowd`` and
    ``area`` honoured). Classes are the categories in sorted id order, named by their "name";
    ``image_dir`` joined with each image's ``file_name`` enables the gallery."""
    from ..data.cocofmt import load_json
    from ..eval.cocojson import evaluate_coco

    gt, results = load_json(gt_path), load_json(pred_path)
    evaluate_coco(gt, results)  # validates both files with errors that name the bad entry
    cats = sorted(gt["categories"], key=lambda c: c["id"])
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    names = [str(c.get("name", c["id"])) for c in cats]
    truth: dict[Any, list] = {im["id"]: [[], [], [], []] for im in gt["images"]}
    for a in gt["annotations"]:
        l, t, w, h = a["bbox"]
        g = truth[a["image_id"]]
        g[0].append([l, t, l + w, t + h])
        g[1].append(cat_index[a["category_id"]])
        g[2].append(bool(a.get("iscrowd", 0)))
        g[3].append(a.get("area", w * h))
    preds: dict[Any, list] = {}
    for r in results:
        l, t, w, h = r["bbox"]
        p = preds.setdefault(r["image_id"], [[], [], []])
        p[0].append([l, t, l + w, t + h])
        p[1].append(r["score"])
        p[2].append(cat_index[r["category_id"]])
    paths = None
    if image_dir is not None:
        paths = {im["id"]: Path(image_dir) / im["file_name"] for im in gt["images"]}
    return diagnose(preds, truth, names, out_dir, paths, **kwargs)


def format_diagnosis(summary: Mapping[str, Any]) -> str:
    """A short text table of a diagnosis (for the console)."""
    dap, cnt, sp = summary["dap"], summary["counts"], summary["special_dap"]
    head = "".join(f"{e.capitalize():>8}" for e in ERROR_TYPES)
    ap = f"{summary['map50'] * 100:.2f}" if summary["map50"] >= 0 else "undefined (no ground truth)"
    lines = [
        f"AP50 {ap}   (TIDE: dAP50 = AP50 gained by fixing each type)",
        f"{'':<8}{head}",
        f"{'dAP50':<8}" + "".join(f"{dap[e] * 100:>8.2f}" for e in ERROR_TYPES),
        f"{'count':<8}" + "".join(f"{cnt[e]:>8d}" for e in ERROR_TYPES),
        f"false positives {summary['false_positives']} (dAP50 {sp['false_positives'] * 100:.2f}),"
        f" false negatives {summary['false_negatives']} (dAP50 "
        f"{sp['false_negatives'] * 100:.2f})",
    ]
    if summary.get("worst_classes"):
        lines.append("lowest AP50 classes: " + ", ".join(summary["worst_classes"][:5]))
    if summary.get("worst_sizes"):
        lines.append("sizes by AP50: " + ", ".join(summary["worst_sizes"]))
    return "\n".join(lines)
