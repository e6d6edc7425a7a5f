"""Text tables of validation results and the COCO json export of a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .coco import EvalResult
from .cocojson import coco_gt_from_labels, coco_predictions, write_json_atomic
from .postprocess import Detections
from .validator import ground_truth_xyxy

__all__ = ["format_per_class", "export_run_predictions"]


def format_per_class(result: EvalResult, names: list[str]) -> str:
    """A table: one row for all classes, one per class with ground truth."""
    s = result.stats
    head = f"{'class':<20}{'images':>8}{'objects':>9}{'AP50':>9}{'AP50-95':>9}{'APsmall':>9}"
    total_gt = sum(int(v.get("num_gt", 0)) for v in result.per_class.values())
    total_img = getattr(result, "num_images", "")
    lines = [
        head,
        f"{'all':<20}{total_img!s:>8}{total_gt:>9}{s['map50']:>9.4f}"
        f"{s['map50_95']:>9.4f}{s['map_small']:>9.4f}",
    ]
    for cls, pc in sorted(result.per_class.items()):
        if pc.get("num_gt", 0) == 0:
            continue
        name = names[int(cls)] if int(cls) < len(names) else str(cls)
        lines.append(
            f"{name:<20}{int(pc.get('num_images', 0)):>8}{int(pc['num_gt']):>9}"
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
