"""Anchors of an anchor-based model before training: report how well they fit the training boxes
and, with ``model.anchors: auto``, replace them by anchors fitted to those boxes."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..assign.anchors import anchor_fit, auto_anchors, box_sizes

__all__ = ["prepare_anchors", "MAX_FIT_BOXES"]

log = logging.getLogger("detforge")

# boxes used for fitting; more only slow the evolution (each generation scores every box)
MAX_FIT_BOXES = 20000


def _fmt(anchors: np.ndarray) -> str:
    return ", ".join(f"{w:.0f}x{h:.0f}" for w, h in anchors)


def prepare_anchors(
    model: nn.Module,
    labels: Sequence[np.ndarray],
    shapes: Sequence[tuple[int, int]],
    imgsz: int,
    anchor_t: float,
    mode: str | None,
    seed: int = 0,
) -> None:
    """Log the best-possible recall and anchors above threshold of ``model``'s anchors on the
    training boxes at ``imgsz``; ``mode="auto"`` (``model.anchors``) fits new ones (k-means +
    evolution, :func:`~detforge.assign.anchors.auto_anchors`) and sets them in the model.

    labels: per image (n, 5) normalised ``[cls, cx, cy, w, h]``; shapes: per image (h0, w0).
    A model without anchors is left alone.
    """
    current = getattr(model, "anchors", None)
    if current is None:
        return
    # the spec follows the buffer (model.weights may have loaded other anchors into it)
    model.set_anchors(current.detach().clone())
    wh = box_sizes(list(labels), list(shapes), imgsz)
    rng = np.random.default_rng(seed)
    if len(wh) > MAX_FIT_BOXES:
        wh = wh[rng.choice(len(wh), MAX_FIT_BOXES, replace=False)]
    levels, per_level = current.shape[:2]
    old = current.detach().cpu().reshape(-1, 2).numpy().astype(np.float64)
    fit = anchor_fit(wh, old, anchor_t)
    log.info(
        "anchors (%s): best-possible recall %.4f, %.2f anchors above threshold 1/%g per object "
        "(%d training boxes at %d px)",
        "current" if mode == "auto" else "model", fit.bpr, fit.above, anchor_t, len(wh), imgsz,
    )  # fmt: skip
    if mode != "auto":
        return
    new, new_fit = auto_anchors(wh, levels * per_level, anchor_t, seed=seed)
    log.info(
        "anchors=auto (k-means + evolution): best-possible recall %.4f, %.2f anchors above "
        "threshold, fitness %.4f (was %.4f); anchors %s",
        new_fit.bpr, new_fit.above, new_fit.fitness, fit.fitness, _fmt(new),
    )  # fmt: skip
    model.set_anchors(torch.tensor(new, dtype=torch.float32).view(levels, per_level, 2))
