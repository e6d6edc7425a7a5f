"""Run a model over a loader: letterboxed inference, detections mapped back to each original
image, optionally the loss on the same forward pass. Scoring them is the evaluator's job."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from ..models.decode import decode_model_outputs
from .device import autocast
from .postprocess import Detections, postprocess, scale_boxes_to_original
from .runtime import detect_batch
from .tta import ensemble_predict

__all__ = ["BatchPredictions", "predict_loader", "prepare_images"]


def prepare_images(img: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float in [0, 1] on ``device``, channels-last (faster convs on CPU)."""
    x = img.to(device, non_blocking=True).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last)


@dataclass
class BatchPredictions:
    """One batch: image ids (B,), detections in original pixels on the CPU (B,), and the loss
    terms of this batch when a loss function was given."""

    image_ids: list[int]
    detections: list[Detections]
    losses: dict[str, torch.Tensor] | None


@torch.no_grad()
def predict_loader(
    model: nn.Module,
    loader,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 300,
    loss_fn: Callable | None = None,
    tta: dict | None = None,
    extra_models: Sequence[nn.Module] = (),
    progress: bool = False,
) -> Iterator[BatchPredictions]:
    """Yield the predictions of ``model`` batch by batch (the model is in eval mode meanwhile).

    tta: keyword arguments of :func:`~detforge.infer.tta.ensemble_predict` (transforms, scales,
    merge, wbf_iou); extra_models: more detectors merged with ``model`` the same way. The loss,
    when asked for, is computed on the plain forward pass of ``model``.
    """
    merged = tta is not None or bool(extra_models)
    for batch in tqdm(loader, desc="val", leave=False, disable=not progress):
        x = prepare_images(batch["img"], device)
        if loss_fn is not None:
            with autocast(device, amp_dtype):
                outputs = [o.float() for o in model(x)]
        terms = loss_fn(outputs, batch["targets"].to(device)) if loss_fn is not None else None
        if merged:
            with autocast(device, amp_dtype):
                dets = ensemble_predict(
                    [model, *extra_models], x, conf=conf, iou=iou, max_det=max_det, **(tta or {})
                )
        elif loss_fn is not None:
            boxes, scores = decode_model_outputs(model, outputs)
            dets = postprocess(boxes, scores, conf, iou, max_det)
        else:  # a PyTorch detector or an exported one (infer.runtime), one post-processing
            dets = detect_batch(model, x, conf, iou, max_det, amp_dtype)
        mapped = [
            Detections(
                scale_boxes_to_original(
                    det.boxes, batch["ratios"][i], batch["pads"][i], tuple(batch["orig_shapes"][i])
                ),
                det.scores,
                det.classes,
            ).to("cpu")
            for i, det in enumerate(dets)
        ]
        yield BatchPredictions([int(i) for i in batch["image_ids"]], mapped, terms)
