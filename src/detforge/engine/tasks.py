"""What differs between training a detector and an image classifier (``train.task``).

The trainer, the stepper, the hooks, the schedule, the checkpoint and the run folder are one;
a :class:`Task` supplies the parts that are not: the data bundle, the model, the loss, the
network input of a batch, one validation (its row, metrics and log line) and the end-of-run
validation's outputs. :class:`DetectTask` is detection as it was (same calls in the same
order, so runs compute the same numbers); :class:`~detforge.engine.classify_task.ClassifyTask`
is classification; :class:`~detforge.engine.tv_task.TorchvisionDetectTask` is detection with
torchvision's detectors.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..config import ConfigError, RunConfig
from ..data.imagefolder import is_classify_data
from ..eval.metrics import scalar_metrics
from ..losses.factory import build_loss_for_model
from ..models.factory import build_model_from_config
from ..models.tv_detectors import is_tv_detector_name
from .anchors import prepare_anchors
from .checkpoint import load_initial_weights
from .setup_data import DataBundle, build_data
from .stages import batch_inputs

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["Task", "DetectTask", "task_for", "float_images"]

log = logging.getLogger("detforge")


class Task:
    """The task-specific parts of a training run; one instance per run (it may keep state
    between validations, e.g. detection's ground truth)."""

    name = ""

    def build_data(self, cfg: RunConfig, rank: int, world: int, imgsz: int, batch: int
                   ) -> DataBundle:  # fmt: skip
        raise NotImplementedError

    def build_model(self, cfg: RunConfig, data: DataBundle, load_weights: bool) -> nn.Module:
        """The model (initial weights loaded when ``load_weights``; not when resuming)."""
        raise NotImplementedError

    def build_loss(self, cfg: RunConfig, model: nn.Module, data: DataBundle) -> nn.Module:
        """A loss with ``compute(outputs, targets) -> (sums, mass)`` (the Stepper's contract)."""
        raise NotImplementedError

    def batch_inputs(self, tr: Trainer, batch: dict, index: int) -> tuple[Tensor, Tensor]:
        """Network input (B, 3, H, W) float in [0, 1] and targets of batch ``index``."""
        raise NotImplementedError

    def before_train(self, tr: Trainer) -> None:
        """Once before the first validation."""

    def validate(self, tr: Trainer) -> tuple[Any, dict[str, float], dict[str, float], str]:
        """Validate ``tr.eval_model()``: the result, its ``val/*`` losses (names without the
        prefix), its metrics and the metrics part of the epoch's log line."""
        raise NotImplementedError

    def validate_model(self, tr: Trainer, model: nn.Module) -> Any:
        """Validate ``model`` (best.pt's weights) at the end of training."""
        raise NotImplementedError

    def finish(self, tr: Trainer, val: Any) -> tuple[dict[str, float], dict]:
        """Report the final validation (table, files in the run folder); returns the final
        metrics and per-class results."""
        raise NotImplementedError

    def summary(self, metrics: dict[str, float]) -> str:
        """The headline metrics of a finished run (``detforge train``'s last line)."""
        raise NotImplementedError


class DetectTask(Task):
    """Object detection: YOLO/COCO data, the YOLO models, the detection loss, COCO validation."""

    name = "detect"

    def build_data(self, cfg, rank, world, imgsz, batch):
        if cfg.data.path and is_classify_data(cfg.data.path):
            raise ConfigError(
                f"data.path: {cfg.data.path} is an image-classification dataset: train it with "
                "task=classify"
            )
        return build_data(cfg, rank, world, imgsz, batch)

    def build_model(self, cfg, data, load_weights):
        t = cfg.train
        # a resumed run's weights (backbone's too) come from its checkpoint
        model = build_model_from_config(cfg.model, len(data.names), t.imgsz, load_weights)
        if cfg.model.weights and load_weights:
            load_initial_weights(model, cfg.model.weights)
        if load_weights:  # on resume the checkpoint's anchors are loaded with its weights
            train_set = data.train_set
            prepare_anchors(
                model, train_set.labels, train_set.shapes, t.imgsz, cfg.assign.anchor_t,
                cfg.model.anchors, t.seed,
            )  # fmt: skip
        return model

    def build_loss(self, cfg, model, data):
        return build_loss_for_model(cfg, model, data.train_set.labels, data.names)

    def batch_inputs(self, tr, batch, index):
        return batch_inputs(batch, tr.device, tr.cfg, tr.epoch, index, tr.model.max_stride)

    def before_train(self, tr):
        from ..report.run_report import dataset_ground_truth

        self.ground_truth = dataset_ground_truth(tr.data.val_set)

    def validation_loss(self, tr: Trainer) -> nn.Module | None:
        """The loss computed on validation batches (``val/*``), None for none."""
        return tr.loss_fn

    def validate(self, tr):
        val = tr.data.validator.run(
            tr.eval_model(), self.validation_loss(tr), keep_predictions=True
        )
        metrics = {
            **val.metrics,
            **scalar_metrics(val.predictions, self.ground_truth, len(tr.data.names)),
        }
        line = f"mAP50 {metrics['map50']:.4f}  mAP50-95 {metrics['map50_95']:.4f}"
        return val, dict(val.losses), metrics, line

    def validate_model(self, tr, model):
        return tr.data.validator.run(model, keep_predictions=True)

    def finish(self, tr, val):
        from ..report.run_report import export_run_predictions, format_per_class, write_run_analysis

        log.info(
            "best epoch %d, validation of best.pt:\n%s",
            tr.best_epoch,
            format_per_class(val.result, tr.data.names),
        )
        if tr.cfg.eval.save_json:
            export_run_predictions(tr.run_dir, tr.data.val_set, val.predictions)
        if tr.cfg.eval.report:
            try:
                report = write_run_analysis(
                    tr.run_dir, val.result, val.predictions, tr.data.val_set
                )
                log.info("report: %s", report)
            except Exception as e:  # a finished run must not fail because a plot did
                log.warning("could not write the run report: %s", e)
        return val.metrics, val.result.per_class

    def summary(self, metrics):
        nan = float("nan")
        return f"mAP50 {metrics.get('map50', nan):.4f}  mAP50-95 {metrics.get('map50_95', nan):.4f}"


def task_for(cfg: RunConfig) -> Task:
    """The :class:`Task` of ``cfg.train.task``."""
    if cfg.train.task == "classify":
        from .classify_task import ClassifyTask

        return ClassifyTask()
    if is_tv_detector_name(cfg.model.name):
        from .tv_task import TorchvisionDetectTask

        return TorchvisionDetectTask()
    return DetectTask()


def float_images(batch_img: Tensor, device: torch.device) -> Tensor:
    """uint8 (B, 3, H, W) -> float [0, 1] on ``device``, channels-last."""
    x = batch_img.to(device, non_blocking=True).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last)
