"""Score a model on a validation set: :func:`~detforge.infer.loop.predict_loader` feeds the COCO
evaluator with detections and ground truth in original pixels."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..infer.loop import predict_loader
from ..infer.postprocess import Detections
from .coco import COCOEvaluator, EvalResult

__all__ = ["Validator", "ValResult", "ground_truth_xyxy"]


def ground_truth_xyxy(labels: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(n, 5) [cls, cx, cy, w, h] normalised -> boxes (n, 4) xyxy original pixels, classes (n,)."""
    h0, w0 = shape
    lab = np.asarray(labels, dtype=np.float64).reshape(-1, 5)
    cx, cy, w, h = lab[:, 1] * w0, lab[:, 2] * h0, lab[:, 3] * w0, lab[:, 4] * h0
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return boxes, lab[:, 0].astype(np.int64)


@dataclass
class ValResult:
    result: EvalResult
    losses: dict[str, float] = field(default_factory=dict)
    predictions: dict[int, Detections] = field(default_factory=dict)  # original pixels, CPU
    seconds: float = 0.0

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.result.stats)


class Validator:
    """Evaluates a model on a dataset: letterboxed inference, boxes mapped back to each
    original image, scored against the dataset's validated labels in original pixels."""

    def __init__(
        self,
        dataset,
        loader,
        device: torch.device,
        amp_dtype: torch.dtype | None = None,
        conf: float = 0.001,
        iou: float = 0.7,
        max_det: int = 300,
        progress: bool = False,
        tta: dict | None = None,
        extra_models: list[nn.Module] = (),
    ):
        """tta: keyword arguments of :func:`~detforge.infer.tta.ensemble_predict` (transforms,
        scales, merge, wbf_iou) for test-time augmentation; extra_models: more detectors to
        ensemble with the validated one (merged the same way)."""
        self.dataset, self.loader, self.device = dataset, loader, device
        self.amp_dtype = amp_dtype
        self.conf, self.iou, self.max_det, self.progress = conf, iou, max_det, progress
        self.tta, self.extra_models = tta, list(extra_models)

    @torch.no_grad()
    def run(self, model: nn.Module, loss_fn=None, keep_predictions: bool = False) -> ValResult:
        t0 = time.perf_counter()
        was_training = model.training
        model.eval()
        evaluator = COCOEvaluator(num_classes=len(self.dataset.names))
        loss_sums: dict[str, float] = {}
        batches = 0
        kept: dict[int, Detections] = {}
        for out in predict_loader(
            model, self.loader, self.device, self.amp_dtype, self.conf, self.iou, self.max_det,
            loss_fn=loss_fn, tta=self.tta, extra_models=self.extra_models, progress=self.progress,
        ):  # fmt: skip
            if out.losses is not None:
                for k, v in out.losses.items():
                    loss_sums[k] = loss_sums.get(k, 0.0) + float(v)
                batches += 1
            for image_id, det in zip(out.image_ids, out.detections, strict=True):
                gt_boxes, gt_cls = ground_truth_xyxy(
                    self.dataset.labels[image_id], self.dataset.shapes[image_id]
                )
                evaluator.process(
                    image_id,
                    det.boxes.double().numpy(),
                    det.scores.double().numpy(),
                    det.classes.numpy(),
                    gt_boxes,
                    gt_cls,
                )
                if keep_predictions:
                    kept[image_id] = det
        model.train(was_training)
        result = evaluator.evaluate()
        losses = {k: v / max(batches, 1) for k, v in loss_sums.items()}
        return ValResult(result, losses, kept, time.perf_counter() - t0)
