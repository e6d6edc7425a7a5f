"""Mixup (blend with a second augmented image) and copy-paste of box regions.

Both run on the (size, size) output of the perspective warp.

Mixup: with probability ``p`` a random other image of the source goes through the same geometric
chain (mosaic, perspective, copy-paste) with the sample's generator, and the two are blended with
a ratio ``r ~ Beta(beta, beta)`` (beta = 32 keeps ``r`` near 0.5: both images stay visible);
the boxes of both are kept. A gray image blended with a colour one is taken to three channels.

Copy-paste without masks: each object is picked with probability ``p``; its box region (pixels
``floor(x1)..ceil(x2)``) is mirrored left-right and pasted at the mirrored place in the image
(x -> W - x, same rows), as if the object also stood on the other side; the copy's box is the
mirrored box. A copy is pasted only if it covers less than ``max_ioa`` of every existing box
(IoA = intersection / area of the existing box, so no labelled object is hidden by more than
that) and of every earlier candidate copy that passed that test (one matrix step instead of a
greedy loop; it may refuse a few more copies than needed). An object near the vertical centre
line overlaps its own copy and is therefore not pasted. The box logic is vectorised; only the
pixel copies loop over the pastes.
"""

from __future__ import annotations

import cv2
import numpy as np

from detforge.boxes import box_ioa
from detforge.data.augment.core import Sample, TileSource, Transform, box_visible

__all__ = ["MixUp", "CopyPaste"]


def _as_rgb(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if img.ndim == 2 else img


class MixUp:
    """Blend the sample with ``chain`` applied to a random other tile of ``source``.

    Skipped when the sample's ``mosaic`` flag is False (close_mosaic turns mixup off too).
    """

    def __init__(self, source: TileSource, chain: Transform, p: float, beta: float = 32.0) -> None:
        self.source, self.chain, self.p, self.beta = source, chain, p, beta

    def __repr__(self) -> str:
        return f"MixUp(p={self.p}, beta={self.beta})"

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if not sample.get("mosaic", True) or rng.random() >= self.p:
            return sample
        img, labels = self.source.load_tile(int(rng.integers(0, len(self.source))))
        other = self.chain({"img": img, "labels": labels, "mosaic": True}, rng)
        r = float(rng.beta(self.beta, self.beta))
        a, b = sample["img"], other["img"]
        if a.ndim != b.ndim:
            a, b = _as_rgb(a), _as_rgb(b)
        sample["img"] = cv2.addWeighted(a, r, b, 1.0 - r, 0.0)
        sample["visible"] = np.concatenate([box_visible(sample), box_visible(other)])
        sample["labels"] = np.concatenate([sample["labels"], other["labels"]]).astype(np.float32)
        return sample


class CopyPaste:
    """Paste mirrored copies of box regions where they hide little of other boxes (see module)."""

    def __init__(self, p: float, max_ioa: float = 0.3) -> None:
        self.p, self.max_ioa = p, max_ioa

    def __repr__(self) -> str:
        return f"CopyPaste(p={self.p}, max_ioa={self.max_ioa})"

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        labels = sample["labels"]
        picked = np.nonzero(rng.random(len(labels)) < self.p)[0]
        if not len(picked):
            return sample
        img = sample["img"]
        h, w = img.shape[:2]
        src = labels[picked]
        copies = src.copy()
        copies[:, 1], copies[:, 3] = w - src[:, 3], w - src[:, 1]
        ok = (box_ioa(copies[:, 1:5], labels[:, 1:5]) < self.max_ioa).all(axis=1)
        # a later copy must not hide an earlier one; checking against every earlier candidate
        # that passed the first test (not only the accepted ones) keeps this one matrix step
        hides = np.tril(box_ioa(copies[:, 1:5], copies[:, 1:5]) >= self.max_ioa, k=-1)
        ok &= ~(hides & ok[None, :]).any(axis=1)
        if not ok.any():
            return sample
        src, copies = src[ok], copies[ok]
        x1 = np.clip(np.floor(src[:, 1]), 0, w).astype(int)
        y1 = np.clip(np.floor(src[:, 2]), 0, h).astype(int)
        x2 = np.clip(np.ceil(src[:, 3]), 0, w).astype(int)
        y2 = np.clip(np.ceil(src[:, 4]), 0, h).astype(int)
        # read every region before writing any, so a copy never carries an earlier paste
        boxes = zip(y1, y2, x1, x2, strict=True)
        regions = [img[a:b, c:d][:, ::-1].copy() for a, b, c, d in boxes]
        out = img.copy()
        for r, a, b, c, d in zip(regions, y1, y2, x1, x2, strict=True):
            out[a:b, w - d : w - c] = r  # pixel column j goes to w - 1 - j
        sample["img"] = out
        vis = box_visible(sample)
        sample["visible"] = np.concatenate([vis, vis[picked[ok]]])
        sample["labels"] = np.concatenate([labels, copies]).astype(np.float32)
        return sample
