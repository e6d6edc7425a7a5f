"""Class-balanced sampling: image weights from class frequencies and a weighted epoch sampler.

``image_weights`` turns the labels of a split into one weight per image; ``WeightedEpochSampler``
draws ``len(dataset)`` indices per epoch with replacement in proportion to them. The draw is a
pure function of (seed, epoch), so an interrupted epoch resumes on exactly the remaining indices
(the ``resume_at`` protocol of :class:`~detforge.data.order.EpochSampler`, which it extends).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from detforge.data.order import EpochSampler

__all__ = ["class_counts", "image_weights", "WeightedEpochSampler"]

Weighting = Literal["rarest", "inverse_frequency"]


def class_counts(labels: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Boxes per class over a split: labels are (n_i, 5) arrays with the class in column 0.

    Returns (num_classes,) int64. Raises ``ValueError`` naming the image for an out-of-range id.
    """
    counts = np.zeros(num_classes, np.int64)
    for i, lab in enumerate(labels):
        cls = np.asarray(lab).reshape(-1, 5)[:, 0].astype(np.int64)
        if len(cls) and (cls.min() < 0 or cls.max() >= num_classes):
            raise ValueError(f"image {i}: class id out of range 0..{num_classes - 1}")
        counts += np.bincount(cls, minlength=num_classes)
    return counts


def image_weights(
    labels: Sequence[np.ndarray],
    num_classes: int,
    mode: Weighting = "rarest",
    power: float = 1.0,
) -> np.ndarray:
    """Sampling weight of every image, normalised to mean 1.

    labels: one (n_i, 5) array ``[cls, ...]`` per image; num_classes: K.
    Class weight ``w_k = (1 / boxes of class k) ** power`` (power 0.5 softens the balance,
    0 gives uniform weights). ``rarest``: an image weighs as much as the rarest class it holds
    (max of w_k over its classes); ``inverse_frequency``: the mean of w_k over its boxes.

    Images without boxes get the smallest weight of the images with boxes: they still teach the
    background, but oversampling rare classes should not also multiply them. When no image has
    a box every weight is 1. Returns (N,) float64; weight 2 means drawn twice as often as in a
    uniform epoch.
    """
    if mode not in ("rarest", "inverse_frequency"):
        raise ValueError(f"weighting must be 'rarest' or 'inverse_frequency', got {mode!r}")
    if power < 0:
        raise ValueError(f"power must be >= 0, got {power}")
    n = len(labels)
    if n == 0:
        return np.zeros(0, np.float64)
    counts = class_counts(labels, num_classes)
    # classes without boxes never index this table; 1 keeps the division finite
    w_class = (1.0 / np.maximum(counts, 1).astype(np.float64)) ** power
    weights = np.full(n, np.nan)
    for i, lab in enumerate(labels):
        cls = np.asarray(lab).reshape(-1, 5)[:, 0].astype(np.int64)
        if len(cls):
            w = w_class[cls]
            weights[i] = w.max() if mode == "rarest" else w.mean()
    empty = np.isnan(weights)
    if empty.all():
        return np.ones(n, np.float64)
    weights[empty] = weights[~empty].min()
    return weights * (n / weights.sum())


class WeightedEpochSampler(EpochSampler):
    """Each epoch, ``size`` indices drawn with replacement with probability ∝ ``weights``.

    The draw of epoch ``e`` depends only on (seed, e); it is padded to a multiple of
    ``world_size`` (every rank gets ``ceil(size / world_size)`` indices) and rank ``r`` takes
    positions ``r, r + world_size, ...``, so ranks read disjoint parts of one draw.
    ``set_epoch``, ``resume_at(epoch, skip)``, ``order`` and ``len`` behave as in
    :class:`EpochSampler`.

    weights: (size,) non-negative, not all zero (e.g. from :func:`image_weights`).
    """

    def __init__(
        self,
        weights: Sequence[float] | np.ndarray,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError("sampling weights must be finite, non-negative and not all zero")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        super().__init__(len(w), shuffle=True, seed=seed, rank=rank, world_size=world_size)
        self.probs = w / w.sum()

    def order(self) -> list[int]:
        """This rank's indices for the current epoch (ignores ``skip``)."""
        total = self.per_rank * self.world_size
        rng = np.random.default_rng([self.seed, self.epoch])
        idx = rng.choice(self.size, size=total, replace=True, p=self.probs)
        return idx[self.rank :: self.world_size].tolist()
