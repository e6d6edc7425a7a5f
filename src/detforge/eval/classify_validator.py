"""Score a classifier on a validation loader: class scores, val loss and
:func:`~detforge.eval.classify.classification_metrics`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..infer.device import autocast
from .classify import ClassifyMetrics, classification_metrics

__all__ = ["ClassifyValidator", "ClassifyValResult"]


@dataclass
class ClassifyValResult:
    detail: ClassifyMetrics
    names: list[str]
    files: list[Path]
    probs: np.ndarray  # (N, C) softmax scores, dataset order
    losses: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def metrics(self) -> dict[str, float]:
        """The scalar metrics (results.csv ``metrics/*``, fitness, early stopping)."""
        d = self.detail.as_dict(self.names)
        keys = ("top1", "top5", "balanced_accuracy", "macro_precision", "macro_f1")
        return {k: float(d[k]) for k in keys}

    def hardest(self) -> list[dict]:
        """The most confident mistakes: file, true class, predicted class, its score."""
        return [{"file": str(self.files[i]), "true": self.names[t], "predicted": self.names[p],
                 "score": s} for i, t, p, s in self.detail.hardest]  # fmt: skip


class ClassifyValidator:
    """Evaluates a classifier on ``loader`` (batches of ``{"img": uint8, "cls": (B,)}`` in
    dataset order, no shuffling) over ``dataset`` (its ``split.files`` name the images)."""

    def __init__(self, dataset, loader, names: list[str], device: torch.device,
                 amp_dtype: torch.dtype | None = None):  # fmt: skip
        self.dataset, self.loader, self.names = dataset, loader, list(names)
        self.device, self.amp_dtype = device, amp_dtype

    @torch.no_grad()
    def run(
        self, model: nn.Module, loss_fn=None, keep_predictions: bool = False
    ) -> ClassifyValResult:
        t0 = time.perf_counter()
        was_training = model.training
        model.eval()
        scores, labels, loss_sum, mass = [], [], {}, 0.0
        for batch in self.loader:
            x = batch["img"].to(self.device, non_blocking=True).float().div_(255)
            y = batch["cls"].to(self.device)
            with autocast(self.device, self.amp_dtype):
                logits = model(x)
            logits = logits.float()
            if loss_fn is not None:
                sums, m = loss_fn.compute(logits, y)
                for k, v in sums.items():
                    loss_sum[k] = loss_sum.get(k, 0.0) + float(v)
                mass += float(m)
            scores.append(logits.softmax(1).cpu().numpy())
            labels.append(y.cpu().numpy())
        model.train(was_training)
        probs = np.concatenate(scores) if scores else np.zeros((0, len(self.names)))
        truth = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        detail = classification_metrics(probs, truth, len(self.names))
        losses = {k: v / max(mass, 1.0) for k, v in loss_sum.items()}
        files = list(self.dataset.split.files)
        return ClassifyValResult(detail, self.names, files, probs, losses,
                                 time.perf_counter() - t0)  # fmt: skip
