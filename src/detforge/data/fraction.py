"""A deterministic, class-stratified fraction of a split (``data.fraction``: cheap trials).

Each image is filed under the rarest class it holds (images without boxes under "background"),
every group keeps its share of images in a seeded order, and an image of any class the draw
missed is added, so every class of the full split is still present.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .sampling import class_counts

__all__ = ["stratified_fraction"]


def stratified_fraction(
    labels: Sequence[np.ndarray], num_classes: int, fraction: float, seed: int = 0
) -> np.ndarray:
    """Sorted indices of about ``fraction`` of the images, every class kept.

    labels: one (n_i, 5) array ``[cls, ...]`` per image; num_classes: K; fraction in (0, 1].
    Returns (M,) int64 with M ~ round(fraction * N) (a few more when a class would be lost:
    one image of each class the stratified draw missed). A pure function of its arguments.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n = len(labels)
    if fraction == 1 or n == 0:
        return np.arange(n, dtype=np.int64)
    counts = class_counts(labels, num_classes)
    classes = [np.unique(np.asarray(lab).reshape(-1, 5)[:, 0].astype(np.int64)) for lab in labels]
    # the rarest class of each image decides its group; -1: no boxes
    group = np.array([c[np.argmin(counts[c])] if len(c) else -1 for c in classes], np.int64)
    rng = np.random.default_rng([seed, 0x46524143])  # a stream of its own, not the order's
    order = rng.permutation(n)
    keep = np.zeros(n, bool)
    for g in np.unique(group):
        members = order[group[order] == g]  # the group in seeded order
        take = max(1, round(fraction * len(members)))
        keep[members[:take]] = True
    present = np.zeros(num_classes, bool)
    for i in np.flatnonzero(keep):
        present[classes[i]] = True
    for i in order:  # one image for each class the draw missed
        missing = classes[i][~present[classes[i]]]
        if len(missing):
            keep[i] = True
            present[missing] = True
    return np.flatnonzero(keep).astype(np.int64)
