"""Attention maps of a detector on images: detect, compute the maps on the letterboxed input,
map them back to the original pixels and write them blended over the image, boxes drawn.

EigenCAM gives one map per image (all detections drawn); Grad-CAM one map per detection (the
chosen ``box`` or the ``topk`` best), each with its own box drawn.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config.fields import ConfigError
from ..data.augment.core import letterbox
from ..infer.postprocess import kept_candidates, scale_boxes_to_original
from ..models.decode import decode
from ..report.draw import class_color, draw_boxes
from ..utils.atomic import atomic_write
from .maps import METHODS, check_layer_outputs, eigen_cam, grad_cam
from .targets import DetectionScore, DetectionScores, find_layers, neck_output_layers

__all__ = ["CamMap", "detector_maps", "overlay", "write_overlay"]

log = logging.getLogger("detforge")


@dataclass
class CamMap:
    """One attention map in original-image pixels and the detections drawn with it.

    heat: (H0, W0) float32 in [0, 1]; boxes: (D, 4) xyxy original pixels; scores (D,);
    classes (D,) int; box: the detection index (best first) a Grad-CAM map explains, or None.
    """

    heat: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    layers: list[str]
    box: int | None = None


def detector_maps(
    model: nn.Module,
    img: np.ndarray,
    imgsz: int,
    method: str = "eigencam",
    layers: Sequence[str] | None = None,
    box: int | None = None,
    topk: int = 3,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
) -> list[CamMap]:
    """Attention maps of ``model`` (a detector in eval mode) on one RGB uint8 image (H0, W0, 3).

    layers: module names (``model.named_modules()``); default the neck outputs, one per level
    (EigenCAM averages them; Grad-CAM uses the level of the anchor behind each box, since the
    other levels' outputs get no gradient from it). box: the index of one detection (best
    first), else the ``topk`` best; Grad-CAM only.
    """
    if method not in METHODS:
        raise ConfigError(f"cam: method '{method}' is not one of {', '.join(METHODS)}")
    names = list(layers) if layers else neck_output_layers(model)
    modules = find_layers(model, names)
    scorer = DetectionScores(model).eval()
    canvas, _, ratio, pad = letterbox(img, np.zeros((0, 5), np.float32), imgsz)
    x = torch.from_numpy(canvas).permute(2, 0, 1)[None].float().div(255)
    x = x.to(next(model.parameters()).device)
    outputs = check_layer_outputs(model, modules, names, x)  # per level (1, 4R+K, h, w)
    boxes, scores = (t[0] for t in decode(outputs, model.strides, model.reg_max))  # (N, 4|K)
    anchor, cls, score = kept_candidates(boxes, scores, conf, iou, max_det)
    orig = scale_boxes_to_original(boxes[anchor], ratio, pad, img.shape[:2]).cpu().numpy()
    cls_np, score_np = cls.cpu().numpy(), score.cpu().numpy()
    unletterbox = _Unletterbox(canvas.shape[:2], ratio, pad, img.shape[:2])
    if method == "eigencam":
        heat = unletterbox(eigen_cam(scorer, modules, x)[0])
        return [CamMap(heat, orig, score_np, cls_np, names)]
    picks = [box] if box is not None else list(range(min(topk, len(anchor))))
    picks = [i for i in picks if i < len(anchor)]
    if not picks:
        return []
    if layers:
        groups = {tuple(names): picks}
    else:  # the neck output of each box's level
        sizes = [o.shape[-2] * o.shape[-1] for o in outputs]
        level = np.repeat(np.arange(len(sizes)), sizes)[anchor.cpu().numpy()]
        groups = {}
        for i in picks:
            groups.setdefault((names[level[i]],), []).append(i)
    out: dict[int, CamMap] = {}
    for group, idx in groups.items():
        targets = [DetectionScore(anchor[i], cls[i]) for i in idx]
        maps = grad_cam(scorer, find_layers(model, list(group)), x, targets)
        for i, m in zip(idx, maps, strict=True):
            sl = slice(i, i + 1)
            out[i] = CamMap(unletterbox(m), orig[sl], score_np[sl], cls_np[sl], list(group), i)
    return [out[i] for i in picks]


class _Unletterbox:
    """A map at the letterboxed input's size -> the original image's size (padding cut)."""

    def __init__(self, canvas_hw, ratio: float, pad: tuple[int, int], orig_hw):
        left, top = pad
        h = min(canvas_hw[0] - top, round(orig_hw[0] * ratio))
        w = min(canvas_hw[1] - left, round(orig_hw[1] * ratio))
        self.crop = (slice(top, top + max(h, 1)), slice(left, left + max(w, 1)))
        self.size = (orig_hw[1], orig_hw[0])

    def __call__(self, heat: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.resize(heat[self.crop], self.size, interpolation=cv2.INTER_LINEAR)


def overlay(img: np.ndarray, cam: CamMap, names: Sequence[str], alpha: float = 0.5) -> np.ndarray:
    """The RGB image blended with the map in the JET colour map (red: high), boxes drawn."""
    import cv2

    heat = np.clip(cam.heat * 255, 0, 255).astype(np.uint8)
    color = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    out = cv2.addWeighted(img, 1 - alpha, color, alpha, 0)
    lw = max(1, round(sum(out.shape[:2]) / 600))
    cls = [int(c) for c in cam.classes]
    labels = [f"{names[c]} {s:.2f}" for c, s in zip(cls, cam.scores, strict=True)]
    return draw_boxes(out, cam.boxes, [class_color(c) for c in cls], labels, lw, 0.4 * lw)


def write_overlay(path: str | os.PathLike, img_rgb: np.ndarray) -> Path:
    """Encode an RGB image by its suffix and write it atomically."""
    import cv2

    path = Path(path)
    ok, buf = cv2.imencode(path.suffix, cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode image for {path}")
    atomic_write(path, lambda f: f.write(buf.tobytes()))
    return path
