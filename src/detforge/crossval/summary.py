"""The summary of a finished k-fold run: mean +- std of every metric over folds (per class
too), one COCO evaluation of every fold's out-of-fold predictions pooled together, a table,
``summary.json``, ``summary.csv`` and ``folds.png`` (each fold's value of the main metrics).

std is the sample standard deviation over folds (ddof=1), the spread a new fold would show.
The pooled evaluation scores each image once, by the fold that did not train on it, so it
weighs images, not folds; it needs the folds' ``val_gt.json`` / ``val_predictions.json``
(``eval.save_json``, on by default) and is left out, with a note, without them.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..eval.cocojson import evaluate_coco
from ..report._io import write_csv
from ..utils.atomic import write_json_atomic

__all__ = ["summarize", "format_summary", "pool_out_of_fold"]

log = logging.getLogger("detforge")

PLOTTED = ("map50_95", "map50", "precision", "recall")


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, np.float64)
    std = float(a.std(ddof=1)) if len(a) > 1 else 0.0
    return {"mean": float(a.mean()), "std": std}


def _over_folds(per_fold: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{metric: mean, std} over the folds that report it (a class absent from a fold's
    validation images has no AP there; its mean is over the others)."""
    keys = list(dict.fromkeys(k for m in per_fold for k in m))
    out = {}
    for key in keys:
        values = [m[key] for m in per_fold if key in m and math.isfinite(m[key]) and m[key] >= 0]
        if values:
            out[key] = {**_mean_std(values), "folds": len(values)}
    return out


def pool_out_of_fold(folder: Path, k: int) -> tuple[dict, list] | None:
    """The folds' validation ground truth and predictions as one COCO dataset (image and
    annotation ids renumbered per fold), or None when a fold has no json."""
    gt: dict = {"images": [], "annotations": [], "categories": []}
    preds: list = []
    for i in range(k):
        run = folder / f"fold{i}"
        gt_file, pred_file = run / "val_gt.json", run / "val_predictions.json"
        if not (gt_file.is_file() and pred_file.is_file()):
            return None
        fold_gt = json.loads(gt_file.read_text(encoding="utf-8"))
        offset = 1 + max((im["id"] for im in gt["images"]), default=-1)
        gt["categories"] = gt["categories"] or fold_gt["categories"]
        gt["images"] += [{**im, "id": im["id"] + offset} for im in fold_gt["images"]]
        first_ann = len(gt["annotations"]) + 1
        gt["annotations"] += [
            {**a, "id": first_ann + n, "image_id": a["image_id"] + offset}
            for n, a in enumerate(fold_gt["annotations"])
        ]
        fold_preds = json.loads(pred_file.read_text(encoding="utf-8"))
        preds += [{**p, "image_id": p["image_id"] + offset} for p in fold_preds]
    return gt, preds


def _plot(folder: Path, per_fold: Sequence[dict[str, float]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [key for key in PLOTTED if all(key in m for m in per_fold)]
    fig, ax = plt.subplots(figsize=(1.6 * len(keys) + 2, 3.5))
    for x, key in enumerate(keys):
        values = np.array([m[key] for m in per_fold])
        ax.scatter(np.full(len(values), x), values, color="tab:blue", zorder=3)
        for f, v in enumerate(values):
            ax.annotate(str(f), (x, v), xytext=(5, 0), textcoords="offset points", fontsize=7)
        s = _mean_std(values)
        ax.errorbar(x + 0.25, s["mean"], yerr=s["std"], fmt="o", color="tab:red", capsize=4)
    ax.set_xticks(range(len(keys)), keys)
    ax.set_ylabel("value per fold (red: mean +- std)")
    ax.set_title(f"{len(per_fold)}-fold cross-validation")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    out = folder / "folds.png"
    tmp = folder / "folds.tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
    return out


def format_summary(summary: dict) -> str:
    """The printed table: metric, mean +- std, then each fold's value."""
    k = summary["k"]
    folds = " ".join(f"{'fold' + str(i):>8}" for i in range(k))
    head = f"{'metric':<24} {'mean +- std':>18}  {folds}"
    lines = [head]
    for key, s in summary["metrics"].items():
        values = " ".join(f"{f['metrics'].get(key, float('nan')):8.4f}" for f in summary["folds"])
        lines.append(f"{key:<24} {s['mean']:9.4f} +- {s['std']:.4f}  {values}")
    for name, metrics in summary["per_class"].items():
        for key in ("ap50", "ap50_95"):
            if key in metrics:
                s = metrics[key]
                lines.append(f"{(name + ' ' + key)[:24]:<24} {s['mean']:9.4f} +- {s['std']:.4f}")
    if summary["out_of_fold"]:
        oof = summary["out_of_fold"]
        lines.append(
            f"out-of-fold pooled ({oof['images']} images): mAP50 {oof['stats']['map50']:.4f}"
            f"  mAP50-95 {oof['stats']['map50_95']:.4f}"
        )
    return "\n".join(lines)


def summarize(folder: Path, folds: Sequence[dict], names: Sequence[str]) -> dict:
    """Write ``summary.json``, ``summary.csv``, ``folds.png`` (and the pooled ``oof_gt.json``
    / ``oof_predictions.json``) into the k-fold ``folder``; log the table; return the summary."""
    k = len(folds)
    per_fold = [f["metrics"] for f in folds]
    per_class_names = list(dict.fromkeys([*names, *(c for f in folds for c in f["per_class"])]))
    per_class = {}
    for c in per_class_names:
        stats = _over_folds([f["per_class"][c] for f in folds if c in f["per_class"]])
        if stats:
            per_class[c] = stats
    pooled = pool_out_of_fold(folder, k)
    oof = None
    if pooled is None:
        log.info("kfold: no out-of-fold evaluation (a fold wrote no val json: eval.save_json)")
    else:
        gt, preds = pooled
        write_json_atomic(folder / "oof_gt.json", gt)
        write_json_atomic(folder / "oof_predictions.json", preds)
        res = evaluate_coco(gt, preds)
        cats = {c["id"]: c["name"] for c in gt["categories"]}
        oof = {
            "images": len(gt["images"]),
            "stats": {key: float(v) for key, v in res.stats.items()},
            "per_class": {
                cats[c]: {key: float(v) for key, v in m.items()} for c, m in res.per_class.items()
            },
        }
    summary = {
        "k": k,
        "metrics": _over_folds(per_fold),
        "per_class": per_class,
        "out_of_fold": oof,
        "folds": [
            {"fold": f["fold"], "best_epoch": f["best_epoch"], "metrics": f["metrics"]}
            for f in folds
        ],  # fmt: skip
    }
    write_json_atomic(folder / "summary.json", summary, indent=1)
    rows = [
        {"metric": key, "mean": s["mean"], "std": s["std"],
         **{f"fold{i}": m.get(key, "") for i, m in enumerate(per_fold)}}
        for key, s in summary["metrics"].items()
    ]  # fmt: skip
    for name, metrics in per_class.items():
        for key, s in metrics.items():
            rows.append({"metric": f"class/{name}/{key}", "mean": s["mean"], "std": s["std"]})
    if oof is not None:
        rows += [{"metric": f"oof/{key}", "mean": v} for key, v in oof["stats"].items()]
    write_csv(folder / "summary.csv", rows)
    try:
        _plot(folder, per_fold)
    except Exception as e:  # the numbers are written; a plot must not lose them
        log.warning("kfold: could not draw folds.png: %s", e)
    log.info("%d-fold summary (%s):\n%s", k, folder, format_summary(summary))
    return summary
