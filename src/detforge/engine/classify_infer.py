"""A classifier checkpoint on a data split (``detforge val``) or on image files
(``detforge predict``); the model is rebuilt from the checkpoint's ClassifierSpec."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError, RunConfig
from ..data.classify_set import ClassifyCollate, ClassifyDataset, build_transforms
from ..data.imagefolder import load_classify_data
from ..data.images import decode_rgb
from ..data.loader import build_dataloader
from ..eval.classify_validator import ClassifyValidator, ClassifyValResult
from ..infer.device import autocast, resolve_amp, select_device
from ..models.classifier import ImageClassifier
from .checkpoint import load_checkpoint, model_from_checkpoint
from .setup_data import resolve_workers

__all__ = ["ClassPrediction", "load_classifier", "validate_classifier", "predict_classes"]


@dataclass
class ClassPrediction:
    file: Path
    top: list[tuple[str, float]]  # (class, probability), most probable first
    ms: float  # this image's share of its batch's forward pass, milliseconds


def load_classifier(weights: str, device: torch.device) -> tuple[ImageClassifier, list[str]]:
    """The EMA (or trained) classifier of a checkpoint, in eval mode on ``device``."""
    ckpt = load_checkpoint(weights)
    model = model_from_checkpoint(ckpt, str(weights))
    if not isinstance(model, ImageClassifier):
        raise ConfigError(f"weights: {weights} is a detector checkpoint, not a classifier")
    return model.to(device).eval(), list(ckpt["names"])


def validate_classifier(cfg: RunConfig, weights: str, split: str = "val") -> ClassifyValResult:
    """Score a classifier checkpoint on ``split`` of ``data.path`` (the run's dataset unless
    given); the checkpoint's classes must be the data's, in order."""
    device = select_device(cfg.train.device)
    model, names = load_classifier(weights, device)
    data = load_classify_data(cfg.data.path, skip_corrupt=not cfg.data.strict)
    if split not in data.splits:
        raise ConfigError(f"split: {data.source} has no '{split}' split ({', '.join(data.splits)})")
    if data.names != names:
        raise ConfigError(
            f"weights {weights} predict classes {names}, data {data.source} has {data.names}"
        )
    dataset = ClassifyDataset(data.splits[split], cfg.train.imgsz, None, seed=cfg.train.seed)
    loader = build_dataloader(
        dataset, batch_size=cfg.eval.batch or 2 * cfg.train.batch, shuffle=False,
        workers=resolve_workers(cfg.data.workers, device), seed=cfg.train.seed,
        collate_fn=ClassifyCollate(len(names)),
    )  # fmt: skip
    validator = ClassifyValidator(dataset, loader, names, device,
                                  resolve_amp(cfg.train.amp, device))  # fmt: skip
    return validator.run(model)


@torch.no_grad()
def predict_classes(
    cfg: RunConfig, weights: str, files: list[Path], topk: int = 5, batch: int = 8
) -> list[ClassPrediction]:
    """Top-``topk`` classes and probabilities of each image (resized and centre-cropped to
    ``train.imgsz`` as in validation)."""
    device = select_device(cfg.train.device)
    amp = resolve_amp(cfg.train.amp, device)
    model, names = load_classifier(weights, device)
    transform = build_transforms(cfg.train.imgsz, None)
    k = min(topk, len(names))
    out: list[ClassPrediction] = []
    for start in range(0, len(files), batch):
        chunk = files[start : start + batch]
        imgs = [transform(torch.from_numpy(decode_rgb(f)).permute(2, 0, 1)) for f in chunk]
        x = torch.stack(imgs).to(device).float().div_(255)
        t0 = time.perf_counter()
        with autocast(device, amp):
            logits = model(x)
        probs = logits.float().softmax(1).cpu().numpy()
        ms = (time.perf_counter() - t0) * 1000 / len(chunk)
        for f, p in zip(chunk, probs, strict=True):
            order = np.argsort(-p, kind="stable")[:k]
            out.append(ClassPrediction(f, [(names[i], float(p[i])) for i in order], ms))
    return out
