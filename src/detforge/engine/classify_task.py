"""Image classification on the training engine (``train.task=classify``): ImageFolder data
through the seeded v2 pipeline and :class:`~detforge.data.classify_set.ClassifyCollate`,
``cnn-s`` / ``efficientnet_b0`` / ``timm:<name>``, cross-entropy, top-1/top-5 validation.

Settings that act here: ``model.dropout``, ``model.weights`` (``imagenet`` or a checkpoint),
``augment.crop_scale`` / ``auto_augment`` / ``cutmix`` (and the shared flips, colour jitter and
``mixup``), ``data.sampler`` (image weights: inverse class frequency to ``data.weight_power``),
``data.cache`` (ram), ``data.strict`` (an unreadable image is an error; else skipped with a
warning), ``loss.label_smoothing`` and ``loss.cls_weights``. The validation row holds
``val/cls`` and ``val/loss`` (the total: the plateau schedule and early stopping read it).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..config import ConfigError, RunConfig
from ..data.classify_set import ClassifyAugment, ClassifyCollate, ClassifyDataset
from ..data.imagefolder import is_classify_data, load_classify_data
from ..data.loader import build_dataloader
from ..data.order import EpochSampler
from ..data.sampling import WeightedEpochSampler, image_weights
from ..eval.classify_validator import ClassifyValidator
from ..infer.device import resolve_amp, select_device
from ..losses.classification import resolve_class_weights
from ..losses.classifier import ClassifierLoss
from ..models.classifier import build_classifier
from .checkpoint import load_initial_weights
from .setup_data import DataBundle, resolve_workers
from .tasks import Task, float_images

__all__ = ["ClassifyTask", "build_classify_data", "classify_augment"]

log = logging.getLogger("detforge")


def classify_augment(cfg: RunConfig) -> ClassifyAugment:
    a = cfg.augment
    return ClassifyAugment(
        scale=(a.crop_scale, 1.0), fliplr=a.fliplr, flipud=a.flipud, hsv_h=a.hsv_h,
        hsv_s=a.hsv_s, hsv_v=a.hsv_v,
        auto_augment=None if a.auto_augment == "none" else a.auto_augment,
        mixup=a.mixup, cutmix=a.cutmix,
    )  # fmt: skip


def _labels_as_boxes(labels: list[int]) -> list[np.ndarray]:
    """One (1, 5) ``[cls, 0, 0, 0, 0]`` row per image: the label layout of data/sampling.py."""
    return [np.array([[c, 0, 0, 0, 0]], dtype=np.float32) for c in labels]


def build_classify_data(
    cfg: RunConfig, rank: int = 0, world: int = 1, batch: int | None = None
) -> DataBundle:
    """Datasets, loaders and validator of a classification run (``data.path``: an ImageFolder
    folder or a ``task: classify`` data.yaml)."""
    path = cfg.data.path
    if not path:
        raise ConfigError(
            "data.path: task=classify needs a dataset (train/<class>/ and val/<class>/ "
            "folders, or a data.yaml with task: classify); detforge convert to=classify "
            "data=det.yaml out=DIR makes one from a detection dataset"
        )
    if not is_classify_data(path):
        raise ConfigError(
            f"data.path: {path} is not an image-classification dataset (no train/<class>/ "
            "folders, no 'task: classify'); a detection dataset trains with task=detect"
        )
    data = load_classify_data(path, skip_corrupt=not cfg.data.strict)
    for w in data.warnings:
        log.warning("%s", w)
    names, nc, seed, imgsz = data.names, len(data.names), cfg.train.seed, cfg.train.imgsz
    aug = classify_augment(cfg)
    ram = cfg.data.cache == "ram"
    train_set = ClassifyDataset(data.splits["train"], imgsz, aug, seed=seed, cache=ram)
    val_set = ClassifyDataset(data.splits["val"], imgsz, None, seed=seed, cache=ram)
    device = select_device(cfg.train.device)
    workers = resolve_workers(cfg.data.workers, device)
    if cfg.data.sampler == "weighted":
        weights = image_weights(
            _labels_as_boxes(train_set.labels), nc, mode="inverse_frequency",
            power=cfg.data.weight_power,
        )  # fmt: skip
        log.info(
            "weighted sampler (inverse class frequency, power %g): image weights %.3g to %.3g",
            cfg.data.weight_power, weights.min(), weights.max(),
        )  # fmt: skip
        sampler = WeightedEpochSampler(weights, seed=seed, rank=rank, world_size=world)
    else:
        sampler = EpochSampler(len(train_set), shuffle=True, seed=seed, rank=rank,
                               world_size=world)  # fmt: skip
    train_loader = build_dataloader(
        train_set, batch_size=batch or cfg.train.batch, shuffle=True, workers=workers,
        seed=seed, sampler=sampler, collate_fn=ClassifyCollate(nc, aug, seed),
    )  # fmt: skip
    val_loader = build_dataloader(
        val_set, batch_size=cfg.eval.batch or 2 * cfg.train.batch, shuffle=False,
        workers=workers, seed=seed, collate_fn=ClassifyCollate(nc),
    )  # fmt: skip
    validator = ClassifyValidator(val_set, val_loader, names, device,
                                  resolve_amp(cfg.train.amp, device))  # fmt: skip
    log.info(
        "classification data %s: %d classes, %d train / %d val images",
        data.source, nc, len(train_set), len(val_set),
    )  # fmt: skip
    return DataBundle(list(names), train_set, val_set, sampler, train_loader, val_loader,
                      validator, Path(path), data, workers)  # fmt: skip


class ClassifyTask(Task):
    name = "classify"

    def build_data(self, cfg, rank, world, imgsz, batch):
        return build_classify_data(cfg, rank, world, batch)

    def build_model(self, cfg, data, load_weights):
        m = cfg.model
        imagenet = m.weights == "imagenet"
        try:
            model = build_classifier(
                m.name,
                len(data.names),
                m.dropout,
                weights="imagenet" if imagenet and load_weights else None,
            )
        except ConfigError:
            raise
        except ValueError as e:
            raise ConfigError(f"model: {e}") from None
        if m.weights and not imagenet and load_weights:
            load_initial_weights(model, m.weights)
        return model

    def build_loss(self, cfg, model, data):
        labels = _labels_as_boxes(data.train_set.labels)
        weights = resolve_class_weights(cfg.loss.cls_weights, len(data.names), labels)
        loss = ClassifierLoss(len(data.names), cfg.loss.label_smoothing, weights)
        return loss.to(next(model.parameters()).device)

    def batch_inputs(self, tr, batch, index):
        return float_images(batch["img"], tr.device), batch["cls"].to(tr.device)

    def validate(self, tr):
        val = tr.data.validator.run(tr.eval_model(), tr.loss_fn)
        losses = {**val.losses, "loss": sum(val.losses.values())}
        m = val.metrics
        line = f"top1 {m['top1']:.4f}  top5 {m['top5']:.4f}"
        return val, losses, m, line

    def validate_model(self, tr, model):
        return tr.data.validator.run(model, tr.loss_fn)

    def finish(self, tr, val):
        from ..report.classify_report import format_classify_table, write_classify_outputs

        log.info(
            "best epoch %d, validation of best.pt:\n%s", tr.best_epoch, format_classify_table(val)
        )
        for f in write_classify_outputs(tr.run_dir, val, plot=tr.cfg.eval.report):
            log.info("wrote %s", f)
        return val.metrics, val.detail.as_dict(val.names)["per_class"]

    def summary(self, metrics):
        nan = float("nan")
        return (
            f"top1 {metrics.get('top1', nan):.4f}  top5 {metrics.get('top5', nan):.4f}  "
            f"balanced accuracy {metrics.get('balanced_accuracy', nan):.4f}"
        )
