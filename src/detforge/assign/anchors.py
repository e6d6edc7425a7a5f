"""Anchor shapes for anchor-based heads: fitness against a dataset's boxes, k-means, evolution.

An object "fits" an anchor when neither its width nor its height differs from the anchor's by more
than a factor ``thr`` (``assign.anchor_t``): that is the rule the ratio matcher
(:mod:`detforge.assign.anchor_match`) uses, so the share of objects that fit at least one anchor
is the best recall any training with these anchors can reach (best-possible recall, BPR).

``auto_anchors`` clusters the boxes' (w, h) with k-means (distances between log sizes), then
evolves the shapes by random multiplicative mutations, keeping a mutation only when it raises the
fitness: the mean over objects of their best ratio-match quality ``min(r, 1/r)`` counted where it
clears ``1/thr``. Pure numpy, deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AnchorFit", "anchor_fit", "kmeans_wh", "evolve_anchors", "auto_anchors", "box_sizes"]

# objects smaller than this (pixels, either side) are left out of the fit: they are mostly
# annotation noise and would pull anchors towards degenerate sizes
MIN_SIDE = 2.0


@dataclass(frozen=True)
class AnchorFit:
    """How well anchors cover objects. bpr: share of objects fitting at least one anchor;
    above: mean number of anchors each object fits; fitness: the value evolution maximises."""

    bpr: float
    above: float
    fitness: float


def _match_quality(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """wh (n, 2), anchors (k, 2) -> (n, k) in (0, 1]: 1 for the same shape, 1/r for a factor r
    on the worse side."""
    r = wh[:, None, :] / anchors[None, :, :]
    return np.minimum(r, 1.0 / r).min(axis=2)


def anchor_fit(wh: np.ndarray, anchors: np.ndarray, thr: float) -> AnchorFit:
    """Best-possible recall, anchors above threshold and fitness of ``anchors`` (k, 2) for boxes
    ``wh`` (n, 2), both in pixels at the training size, with the ratio threshold ``thr``."""
    if len(wh) == 0:
        return AnchorFit(0.0, 0.0, 0.0)
    q = _match_quality(np.asarray(wh, np.float64), np.asarray(anchors, np.float64))
    ok = q > 1.0 / thr
    best = q.max(axis=1)
    return AnchorFit(
        bpr=float((best > 1.0 / thr).mean()),
        above=float(ok.sum(axis=1).mean()),
        fitness=float((best * (best > 1.0 / thr)).mean()),
    )


def kmeans_wh(wh: np.ndarray, k: int, rng: np.random.Generator, iters: int = 50) -> np.ndarray:
    """k-means on box sizes (n, 2) -> k centres (k, 2) in pixels, sorted by area.

    Distances are taken between log sizes: the matcher and the fitness judge a box by its size
    *ratio* to an anchor, and in linear pixels the large boxes' spread would swallow the small
    clusters. Centres start by k-means++ seeding. Fewer distinct boxes than ``k`` is an error.
    """
    wh = np.asarray(wh, np.float64)
    if len(np.unique(wh, axis=0)) < k:
        raise ValueError(f"k-means needs at least {k} distinct box sizes, got {len(wh)} boxes")
    x = np.log(wh)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = ((x[:, None] - np.asarray(centres)[None]) ** 2).sum(-1).min(1)
        centres.append(x[rng.choice(len(x), p=d2 / d2.sum())])
    c = np.asarray(centres)
    for _ in range(iters):
        label = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
        new = np.array([x[label == j].mean(0) if (label == j).any() else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    out = np.exp(c)
    return out[np.argsort(out.prod(1))]


def evolve_anchors(
    wh: np.ndarray,
    anchors: np.ndarray,
    thr: float,
    rng: np.random.Generator,
    generations: int = 1000,
    mutation_prob: float = 0.9,
    sigma: float = 0.1,
) -> np.ndarray:
    """Random multiplicative mutations of ``anchors`` (k, 2), each kept only when it raises
    :func:`anchor_fit`'s fitness on ``wh``. Returns (k, 2) sorted by area."""
    wh = np.asarray(wh, np.float64)
    best = np.asarray(anchors, np.float64).copy()
    best_fit = anchor_fit(wh, best, thr).fitness
    for _ in range(generations):
        factor = np.ones_like(best)
        while (factor == 1).all():  # a mutation must change something
            hit = rng.random(best.shape) < mutation_prob
            step = rng.random() * rng.standard_normal(best.shape) * sigma
            factor = np.clip(np.where(hit, 1.0 + step, 1.0), 0.3, 3.0)
        cand = np.maximum(best * factor, MIN_SIDE)
        fit = anchor_fit(wh, cand, thr).fitness
        if fit > best_fit:
            best, best_fit = cand, fit
    return best[np.argsort(best.prod(1))]


def box_sizes(labels: list[np.ndarray], shapes: list[tuple[int, int]], imgsz: int) -> np.ndarray:
    """Box (w, h) in pixels at the training size, from normalised YOLO labels.

    labels: per image (n, 5) ``[cls, cx, cy, w, h]`` in [0, 1]; shapes: per image (h0, w0); the
    letterbox scales the longer side to ``imgsz``. Boxes under :data:`MIN_SIDE` are dropped.
    """
    out = []
    for lab, (h0, w0) in zip(labels, shapes, strict=True):
        lab = np.asarray(lab, np.float64).reshape(-1, 5)
        if len(lab) == 0:
            continue
        r = imgsz / max(h0, w0)
        out.append(lab[:, 3:5] * np.array([w0 * r, h0 * r]))
    wh = np.concatenate(out) if out else np.zeros((0, 2))
    return wh[(wh >= MIN_SIDE).all(axis=1)]


def auto_anchors(
    wh: np.ndarray, k: int, thr: float, seed: int = 0, generations: int = 1000
) -> tuple[np.ndarray, AnchorFit]:
    """k-means then evolution: (k, 2) anchors in pixels sorted by area, and their fit."""
    rng = np.random.default_rng(seed)
    anchors = evolve_anchors(wh, kmeans_wh(wh, k, rng), thr, rng, generations)
    return anchors, anchor_fit(wh, anchors, thr)
