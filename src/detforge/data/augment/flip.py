"""Mirror flips (left-right, top-bottom) of image and boxes."""

from __future__ import annotations

import cv2
import numpy as np

from detforge.data.augment.core import Sample

__all__ = ["RandomFlip"]


class RandomFlip:
    """Mirror the image left-right (``horizontal``) or top-bottom with probability ``p``."""

    def __init__(self, p: float, horizontal: bool = True) -> None:
        self.p, self.horizontal = p, horizontal

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        # draw even when p is 0 or 1 so the random stream does not depend on the settings
        if rng.random() >= self.p:
            return sample
        img, labels = sample["img"], sample["labels"].copy()
        h, w = img.shape[:2]
        if self.horizontal:
            sample["img"] = cv2.flip(img, 1)
            labels[:, [1, 3]] = w - labels[:, [3, 1]]
        else:
            sample["img"] = cv2.flip(img, 0)
            labels[:, [2, 4]] = h - labels[:, [4, 2]]
        sample["labels"] = labels
        return sample
