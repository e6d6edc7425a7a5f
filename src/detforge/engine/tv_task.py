"""torchvision's detectors on the detection task (``model=fasterrcnn-r50-fpn``, ...): the same
data, sampler, augmentation, letterbox, evaluator and report as :class:`DetectTask`; the model
computes its own loss terms (:class:`~detforge.losses.loss_dict.LossDictLoss`) from targets
converted to torchvision's one-dict-per-image form, and validation gives metrics only (these
models return losses in training mode alone, so there are no ``val/*`` losses)."""

from __future__ import annotations

from ..losses.loss_dict import LossDictLoss
from ..models.factory import build_model_from_config
from .checkpoint import load_initial_weights
from .stages import batch_inputs
from .tasks import DetectTask

__all__ = ["TorchvisionDetectTask"]


class TorchvisionDetectTask(DetectTask):
    name = "detect"

    def build_model(self, cfg, data, load_weights):
        model = build_model_from_config(cfg.model, len(data.names), cfg.train.imgsz, load_weights)
        # weights=coco is torchvision's, loaded by the build; anything else is a checkpoint
        if cfg.model.weights not in (None, "coco") and load_weights:
            load_initial_weights(model, cfg.model.weights)
        return model

    def build_loss(self, cfg, model, data):
        return LossDictLoss()

    def batch_inputs(self, tr, batch, index):
        """Images (B, 3, H, W) in [0, 1] and one ``{"boxes", "labels"}`` dict per image."""
        x, targets = batch_inputs(batch, tr.device, tr.cfg, tr.epoch, index, tr.model.max_stride)
        return x, tr.model.targets_from_batch(targets, x.shape[0])

    def validation_loss(self, tr):
        return None
