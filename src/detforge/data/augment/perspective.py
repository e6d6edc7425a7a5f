"""Random perspective: rotation, scale, shear, translation and perspective in one 3x3 matrix.

The matrix maps continuous input coordinates to output coordinates, composed right to left:

    M = T(out/2 + t) @ Shear @ RotScale @ Persp @ T(-in_w/2, -in_h/2)

so the input's centre lands on the output's centre (shifted by a random ``t``). With a single
image whose long side is the output size this is a letterbox fit plus jitter; with a
(2 size, 2 size) mosaic canvas at scale 1 it cuts the central (size, size) window, and other
scales zoom around it. The image goes through one ``cv2.warpAffine`` (or ``warpPerspective``
when the projective terms are on), the boxes through the same matrix: all 4 corners of every box
at once, then their axis-aligned hull.

Without rotation, shear and perspective (the default) the warp is a scale and a shift, and a
``cv2.resize`` of the source window does the same job about three times faster than
``warpAffine``: the scale is rounded so that the window is a whole number of source pixels
(``size / round(size / s)``, a change below 0.2% at 640 px) and the boxes use that exact matrix.
Both paths interpolate bilinearly (``INTER_AREA`` would average when shrinking, but at
non-integer factors it costs 5 to 10 times more).

Hull semantics: for a rotated or sheared box the hull of its corners is the tightest axis-aligned
box around the transformed *box*, which is exact for objects that fill their box and looser for
others (there are no masks to do better). Clipping a rotated hull at the border can keep a little
more than the visible object.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from detforge.data.augment.core import (
    AugmentParams,
    Layout,
    Placer,
    Sample,
    box_visible,
    clip_boxes,
    warp_matrix_for_cv2,
)

__all__ = ["perspective_boxes", "random_perspective_matrix", "RandomPerspective"]

# projective weights below this are at or behind the camera plane: the box has no image there
_MIN_W = 1e-3


def perspective_boxes(xyxy: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (n, 4) xyxy through a 3x3 matrix -> ((n, 4) hull of the 4 corners, valid (n,)).

    A box is invalid when a corner maps to or behind the projective horizon (weight <= 0);
    its returned coordinates are then meaningless and must be dropped.
    """
    x1, y1, x2, y2 = xyxy.T.astype(np.float64)
    ones = np.ones_like(x1)
    # (n, 4 corners, 3): homogeneous corners, all boxes in one matrix product
    corners = np.stack(
        [np.stack([x1, y1, ones], 1), np.stack([x2, y1, ones], 1),
         np.stack([x2, y2, ones], 1), np.stack([x1, y2, ones], 1)], axis=1,
    )  # fmt: skip
    t = corners @ m.T
    w = t[..., 2:]
    valid = (w[..., 0] > _MIN_W).all(axis=1)
    xy = t[..., :2] / np.where(w > _MIN_W, w, 1.0)
    hull = np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1)
    return hull.astype(np.float32), valid


def random_perspective_matrix(
    rng: np.random.Generator, in_w: float, in_h: float, out_size: int, p: AugmentParams
) -> tuple[np.ndarray, float]:
    """Draw the 3x3 matrix mapping an (in_h, in_w) input to the (out_size, out_size) output.

    Always draws 8 uniforms so the random stream does not depend on the settings. Returns
    (matrix, scale factor).
    """
    u = rng.uniform(-1.0, 1.0, 8)
    angle = math.radians(u[0] * p.degrees)
    scale = 1.0 + u[1] * p.scale
    shear_x, shear_y = (math.tan(math.radians(v * p.shear)) for v in u[2:4])
    px, py = u[4:6] * p.perspective
    tx, ty = u[6:8] * p.translate * out_size

    centre = np.array([[1.0, 0, -in_w / 2], [0, 1.0, -in_h / 2], [0, 0, 1.0]])
    persp = np.array([[1.0, 0, 0], [0, 1.0, 0], [px, py, 1.0]])
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    rot_scale = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    shear = np.array([[1.0, shear_x, 0], [shear_y, 1.0, 0], [0, 0, 1.0]])
    place = np.array([[1.0, 0, out_size / 2 + tx], [0, 1.0, out_size / 2 + ty], [0, 0, 1.0]])
    return place @ shear @ rot_scale @ persp @ centre, scale


def _whole_pixel_window(m: np.ndarray, size: int) -> tuple[int, int, int, np.ndarray]:
    """For ``x' = s x + t`` (``m`` 3x3, s = m[0, 0] = m[1, 1]): the n x n source window at
    (x0, y0) that a resize to (size, size) maps onto the output, s and t rounded so that n is a
    whole number of pixels. Returns (x0, y0, n, the matrix the resize applies)."""
    n = max(1, round(size / m[0, 0]))
    s = size / n
    x0, y0 = round(-m[0, 2] / s), round(-m[1, 2] / s)
    return x0, y0, n, np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s], [0.0, 0.0, 1.0]])


class RandomPerspective:
    """Warp the sample onto a (size, size) canvas with a random ``random_perspective_matrix``.

    Boxes are transformed by corner hull, clipped, and filtered by ``params`` (min_side,
    min_area, max_aspect, min_visible counting earlier cuts through ``visible``). ``ratio`` and
    ``pad`` are composed with the scale and the shift of the input's origin: exact (``x = ratio
    * x0 + pad``) when rotation, shear and perspective are off and the input was a single image.

    mosaic: when given, the mosaic is placed first (``Mosaic.place``) and only the part of its
    canvas that the output shows is drawn (on average a third of it at scale 1 +- 0.5); samples
    are identical to ``Compose([mosaic, RandomPerspective(...)])``.
    """

    def __init__(
        self, size: int, params: AugmentParams, pad_value: int = 114, mosaic: Placer | None = None
    ) -> None:
        self.size, self.p, self.pad_value, self.mosaic = size, params, pad_value, mosaic

    def __repr__(self) -> str:
        return f"RandomPerspective(size={self.size}, mosaic={self.mosaic!r})"

    def _render(self, layout: Layout, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output image (size, size[, 3]) and the matrix actually applied."""
        size, pad = self.size, self.pad_value
        if m[0, 1] == 0 and m[1, 0] == 0 and m[2, 0] == 0 and m[2, 1] == 0 and m[0, 0] == m[1, 1]:
            x0, y0, n, m = _whole_pixel_window(m, size)
            window = layout.render(x0, y0, n, n, pad)
            return cv2.resize(window, (size, size), interpolation=cv2.INTER_LINEAR), m
        src = layout.render(0, 0, layout.width, layout.height, pad)
        cv_m, border = warp_matrix_for_cv2(m), (pad,) * 3
        if m[2, 0] == 0 and m[2, 1] == 0:
            # affine: the cheaper warp (about 25% faster on a 640 px RGB output)
            out = cv2.warpAffine(
                src, cv_m[:2], (size, size), flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT, borderValue=border,
            )  # fmt: skip
        else:
            out = cv2.warpPerspective(
                src, cv_m, (size, size), flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT, borderValue=border,
            )  # fmt: skip
        return out, m

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        layout = self.mosaic.place(sample, rng) if self.mosaic is not None else None
        if layout is None:
            layout = Layout.single(sample["img"])
        size = self.size
        m, scale = random_perspective_matrix(rng, layout.width, layout.height, size, self.p)
        sample["img"], applied = self._render(layout, m)
        if applied is not m:
            m, scale = applied, applied[0, 0]
        labels = sample["labels"]
        visible = box_visible(sample)
        if len(labels):
            hull, valid = perspective_boxes(labels[:, 1:5], m)
            boxes, keep, visible = clip_boxes(hull, size, size, self.p, visible)
            keep &= valid
            labels = np.concatenate([labels[:, :1], boxes], axis=1)[keep]
            visible = visible[keep]
        sample["labels"] = labels.astype(np.float32, copy=False)
        sample["visible"] = visible
        # compose with the mapping so far (x = ratio * x0 + pad) so it still maps back
        px, py = sample.get("pad", (0.0, 0.0))
        origin = m @ np.array([px, py, 1.0])
        sample["ratio"] = sample.get("ratio", 1.0) * scale
        sample["pad"] = (float(origin[0] / origin[2]), float(origin[1] / origin[2]))
        return sample
