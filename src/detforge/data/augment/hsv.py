"""Photometric jitter: hue, saturation and value."""

from __future__ import annotations

import cv2
import numpy as np

from detforge.data.augment.core import Sample

__all__ = ["RandomHSV"]


class RandomHSV:
    """Jitter hue (shift), saturation and value (gains) with one 3-channel LUT."""

    def __init__(self, h: float, s: float, v: float) -> None:
        self.h, self.s, self.v = h, s, v

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        dh, ds, dv = rng.uniform(-1, 1, 3) * (self.h, self.s, self.v)
        if not (dh or ds or dv):
            return sample
        x = np.arange(256, dtype=np.float32)
        # OpenCV's 8-bit hue runs over 0..179; the shift is a fraction of that circle
        lut_h = np.mod(np.round(x + dh * 180), 180)
        lut_s = np.clip(np.round(x * (1 + ds)), 0, 255)
        lut_v = np.clip(np.round(x * (1 + dv)), 0, 255)
        lut = np.stack([lut_h, lut_s, lut_v], axis=-1).astype(np.uint8).reshape(256, 1, 3)
        img = sample["img"]
        if img.ndim == 2:
            # gray has zero saturation: HSV -> RGB gives back R = G = B = V, so only V acts
            sample["img"] = cv2.LUT(img, lut[:, :, 2].copy())
            return sample
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        cv2.LUT(hsv, lut, dst=hsv)
        sample["img"] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return sample
