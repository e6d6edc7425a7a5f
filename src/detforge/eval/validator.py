"""Run a model over a validation loader and score it with the COCO evaluator."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..infer.postprocess import Detections, postprocess, scale_boxes_to_original
from ..infer.tta import ensemble_predict
from ..models.decode import decode
from .coco import COCOEvaluator, EvalResult

__all__ = ["Validator", "ValResult", "ground_truth_xyxy", "prepare_images"]


def prepare_images(img: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float in [0, 1] on ``device``, channels-last (faster convs on CPU)."""
    x = img.to(device, non_blocking=True).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last)


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
        """tta: keyword arguments of :func:`~detforge.eval.tta.ensemble_predict` (transforms,
        scales, merge, wbf_iou) for test-time augmentation; extra_models: more detectors to
        ensemble with the validated one (merged the same way)."""
        self.dataset, self.loader, self.device = dataset, loader, device
        self.amp_dtype = amp_dtype
        self.conf, self.iou, self.max_det, self.progress = conf, iou, max_det, progress
        self.tta, self.extra_models = tta, list(extra_models)

    @torch.no_grad()
    def run(self, model: nn.Module, loss_fn=None, keep_predictions: bool = False) -> ValResult:
        import time

        from ..infer.device import autocast

        t0 = time.perf_counter()
        was_training = model.training
        model.eval()
        evaluator = COCOEvaluator(num_classes=len(self.dataset.names))
        loss_sums: dict[str, float] = {}
        batches = 0
        kept: dict[int, Detections] = {}
        it = tqdm(self.loader, desc="val", leave=False, disable=not self.progress)
        for batch in it:
            x = prepare_images(batch["img"], self.device)
            merged = self.tta is not None or bool(self.extra_models)
            if loss_fn is not None or not merged:
                with autocast(self.device, self.amp_dtype):
                    outputs = [o.float() for o in model(x)]
            if loss_fn is not None:
                terms = loss_fn(outputs, batch["targets"].to(self.device))
                for k, v in terms.items():
                    loss_sums[k] = loss_sums.get(k, 0.0) + float(v)
                batches += 1
            if merged:
                with autocast(self.device, self.amp_dtype):
                    dets = ensemble_predict(
                        [model, *self.extra_models], x, conf=self.conf, iou=self.iou,
                        max_det=self.max_det, **(self.tta or {}),
                    )  # fmt: skip
            else:
                boxes, scores = decode(outputs, model.strides, model.reg_max)
                dets = postprocess(boxes, scores, self.conf, self.iou, self.max_det)
            for i, det in enumerate(dets):
                image_id = int(batch["image_ids"][i])
                orig = tuple(batch["orig_shapes"][i])
                det = Detections(
                    scale_boxes_to_original(det.boxes, batch["ratios"][i], batch["pads"][i], orig),
                    det.scores,
                    det.classes,
                ).to("cpu")
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
