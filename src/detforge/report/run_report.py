"""Text tables of validation results, the COCO json export of a run, and the end-of-run
analysis (``explain`` + ``diagnose`` + ``report.html``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.cocofmt import coco_gt_from_labels
from ..eval.coco import EvalResult
from ..eval.cocojson import coco_predictions
from ..eval.validator import ground_truth_xyxy
from ..infer.postprocess import Detections
from ..utils.atomic import write_json_atomic
from .explain import explain

__all__ = [
    "format_per_class",
    "export_run_predictions",
    "explain",
    "dataset_ground_truth",
    "dataset_image_paths",
    "write_run_analysis",
]


def format_per_class(
    result: EvalResult, names: list[str], explained: Mapping[str, Any] | None = None
) -> str:
    """A table: one row for all classes, one per class with ground truth. With ``explained``
    (what :func:`explain` returns) it adds P and R at the best-mean-F1 confidence."""
    s = result.stats
    prf = {r["class"]: r for r in explained["per_class"]} if explained else {}
    extra = f"{'P':>8}{'R':>8}" if prf else ""
    head = f"{'class':<20}{'images':>8}{'objects':>9}{extra}{'AP50':>9}{'AP50-95':>9}{'APsmall':>9}"
    total_gt = sum(int(v.get("num_gt", 0)) for v in result.per_class.values())
    total_img = getattr(result, "num_images", "")
    m = explained["metrics"] if prf else {}
    mid = f"{m['precision']:>8.3f}{m['recall']:>8.3f}" if prf else ""
    lines = [
        head,
        f"{'all':<20}{total_img!s:>8}{total_gt:>9}{mid}{s['map50']:>9.4f}"
        f"{s['map50_95']:>9.4f}{s['map_small']:>9.4f}",
    ]
    for cls, pc in sorted(result.per_class.items()):
        if pc.get("num_gt", 0) == 0:
            continue
        name = names[int(cls)] if int(cls) < len(names) else str(cls)
        row = prf.get(name)
        mid = f"{row['precision']:>8.3f}{row['recall']:>8.3f}" if row else " " * len(extra)
        lines.append(
            f"{name:<20}{int(pc.get('num_images', 0)):>8}{int(pc['num_gt']):>9}{mid}"
            f"{pc['ap50']:>9.4f}{pc['ap50_95']:>9.4f}{pc['ap_small']:>9.4f}"
        )
    return "\n".join(lines)


def export_run_predictions(run_dir: Path, dataset, predictions: dict[int, Detections]) -> None:
    """Write ``val_gt.json`` (COCO ground truth) and ``val_predictions.json`` (COCO results).

    Image ids are the dataset indices; category_id = class index + 1 (COCO's 1-based habit).
    """
    images, labels = [], []
    for i, path in enumerate(dataset.image_files):
        h0, w0 = dataset.shapes[i]
        images.append({"id": i, "file_name": Path(path).name, "height": int(h0), "width": int(w0)})
        boxes, cls = ground_truth_xyxy(dataset.labels[i], dataset.shapes[i])
        labels.append(np.concatenate([cls[:, None].astype(np.float64), boxes], axis=1))
    write_json_atomic(run_dir / "val_gt.json", coco_gt_from_labels(images, labels, dataset.names))
    ids = sorted(predictions)
    empty = torch.zeros(0, 4)
    preds = coco_predictions(
        ids,
        [predictions[i].boxes if len(predictions[i]) else empty for i in ids],
        [predictions[i].scores for i in ids],
        [predictions[i].classes for i in ids],
    )
    write_json_atomic(run_dir / "val_predictions.json", preds)


def dataset_ground_truth(dataset) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{image index: (boxes (n, 4) xyxy original pixels, classes (n,))} of a ``YoloDataset``,
    the keys the validator uses for its kept predictions."""
    return {i: ground_truth_xyxy(lab, dataset.shapes[i]) for i, lab in enumerate(dataset.labels)}


def dataset_image_paths(dataset) -> dict[int, str]:
    """{image index: image file} of a ``YoloDataset``."""
    return {i: str(p) for i, p in enumerate(dataset.image_files)}


def write_run_analysis(
    run_dir: str | os.PathLike,
    result: EvalResult,
    predictions: Mapping[Any, Any],
    dataset,
    conf: float | None = None,
) -> Path:
    """End-of-training analysis: ``explain`` into run_dir/eval, ``diagnose`` into
    run_dir/diagnosis, then run_dir/report.html. predictions: the validator's kept
    {image index: Detections} on ``dataset`` (a YoloDataset). Returns the report path."""
    from .diagnose import diagnose
    from .html_report import write_report

    run_dir = Path(run_dir)
    gt, paths = dataset_ground_truth(dataset), dataset_image_paths(dataset)
    names = list(dataset.names)
    explain(result, predictions, gt, names, run_dir / "eval", conf=conf, images=paths)
    diagnose(predictions, gt, names, run_dir / "diagnosis", images=paths)
    return write_report(run_dir)
