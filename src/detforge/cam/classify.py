"""Attention maps of an image classifier: Grad-CAM of one class's logit (the predicted class
unless one is chosen), or EigenCAM, on the image as the classifier sees it in ``predict`` and
``val`` (short side resized to ``imgsz``, centre crop), mapped back to the original pixels.

The part of the image outside the centre crop is never seen by the model: its map is 0 there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..config.fields import ConfigError
from ..report.draw import draw_label
from .maps import METHODS, check_layer_outputs, eigen_cam, grad_cam
from .targets import find_layers

__all__ = ["ClassCam", "ClassLogit", "classifier_maps", "classifier_stages", "classifier_layers",
           "resolve_class",
           "class_overlay"]  # fmt: skip


@dataclass
class ClassCam:
    """One classifier attention map. heat: (H0, W0) float32 in [0, 1]; cls: the explained class
    (None for EigenCAM, which explains no class); prob: its softmax probability; predicted /
    predicted_prob: the top class and its probability."""

    heat: np.ndarray
    cls: int | None
    prob: float | None
    predicted: int
    predicted_prob: float
    layers: list[str]


class ClassLogit:
    """Grad-CAM target: the logit of class ``cls``, called on one image's logits (C,)."""

    def __init__(self, cls: int):
        self.cls = int(cls)

    def __call__(self, logits: Tensor) -> Tensor:
        return logits[self.cls]


def resolve_class(value: str | int, names: Sequence[str]) -> int:
    """``class=``: a class name, or an index into ``names``; anything else is an error that
    lists the classes."""
    text = str(value)
    if text in names:
        return list(names).index(text)
    if text.isdigit() and int(text) < len(names):
        return int(text)
    listed = ", ".join(f"{i}={n}" for i, n in enumerate(names))
    raise ConfigError(f"cam: class={text} is neither a class name nor an index of: {listed}")


def classifier_stages(model: nn.Module, imgsz: int) -> list[str]:
    """Names of the backbone's direct children (and the head's) whose output is a spatial map
    (B, C, h, w) with h * w > 1: the layers worth naming with ``layer=``, for error messages."""
    named = [(f"{part}.{n}", m) for part in ("backbone", "head")
             for n, m in getattr(model, part).named_children()]  # fmt: skip
    shapes: dict[str, tuple] = {}
    handles = [m.register_forward_hook(lambda _m, _i, o, n=n: shapes.__setitem__(n, o.shape)
                                       if isinstance(o, Tensor) else None)
               for n, m in named]  # fmt: skip
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, imgsz, imgsz, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    spatial = {n for n, shape in shapes.items() if len(shape) == 4 and shape[-2] * shape[-1] > 1}
    return [n for n, _ in named if n in spatial]


def classifier_layers(model: nn.Module, names: Sequence[str], imgsz: int) -> list[nn.Module]:
    """The modules named ``names``; an unknown name is an error listing the model's stages."""
    known = dict(model.named_modules())
    valid = classifier_stages(model, imgsz) if any(n not in known for n in names) else []
    return find_layers(model, list(names), valid)


def classifier_input(
    img: np.ndarray, imgsz: int
) -> tuple[Tensor, tuple[int, int], tuple[int, int]]:
    """An RGB uint8 image (H0, W0, 3) -> the model input (1, 3, S, S) float in [0, 1] (the
    validation transform), the resized size (h, w) and the crop's top-left (top, left) in it."""
    from torchvision.transforms import v2

    t = v2.Resize(imgsz, antialias=True)(torch.from_numpy(img).permute(2, 0, 1))
    h, w = t.shape[-2:]
    top, left = int(round((h - imgsz) / 2.0)), int(round((w - imgsz) / 2.0))
    crop = t[:, top : top + imgsz, left : left + imgsz]
    return crop[None].float().div(255), (h, w), (top, left)


def classifier_maps(
    model: nn.Module,
    img: np.ndarray,
    imgsz: int,
    method: str = "gradcam",
    layers: Sequence[str] | None = None,
    cls: int | None = None,
) -> ClassCam:
    """The attention map of ``model`` (an ImageClassifier in eval mode) on one RGB uint8 image
    (H0, W0, 3). layers: module names (default ``model.cam_layer``, its last spatial stage);
    cls: the class Grad-CAM explains (default: the predicted one; not with EigenCAM)."""
    if method not in METHODS:
        raise ConfigError(f"cam: method '{method}' is not one of {', '.join(METHODS)}")
    if method == "eigencam" and cls is not None:
        raise ConfigError("cam: class= picks the class Grad-CAM explains; use method=gradcam")
    names = list(layers) if layers else [model.cam_layer]
    modules = classifier_layers(model, names, imgsz)
    x, (h, w), (top, left) = classifier_input(img, imgsz)
    x = x.to(next(model.parameters()).device)
    logits = check_layer_outputs(model, modules, names, x)[0].float()  # (C,)
    probs = logits.softmax(0).cpu().numpy()
    predicted = int(np.argmax(probs))
    if method == "eigencam":
        heat, target = eigen_cam(model, modules, x)[0], None
    else:
        target = predicted if cls is None else int(cls)
        heat = grad_cam(model, modules, x, [ClassLogit(target)])[0]
    import cv2

    canvas = np.zeros((h, w), np.float32)  # outside the centre crop the model sees nothing
    canvas[top : top + imgsz, left : left + imgsz] = heat
    full = cv2.resize(canvas, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    prob = None if target is None else float(probs[target])
    return ClassCam(full, target, prob, predicted, float(probs[predicted]), names)


def class_overlay(img: np.ndarray, cam: ClassCam, names: Sequence[str],
                  alpha: float = 0.5) -> np.ndarray:  # fmt: skip
    """The RGB image blended with the map (JET colour map, red: high), labelled with the
    explained class and its probability (and the prediction when it differs)."""
    import cv2

    heat = np.clip(cam.heat * 255, 0, 255).astype(np.uint8)
    color = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    out = cv2.addWeighted(img, 1 - alpha, color, alpha, 0)
    text = f"predicted {names[cam.predicted]} {cam.predicted_prob:.2f}"
    if cam.cls is not None and cam.cls != cam.predicted:
        text = f"{names[cam.cls]} {cam.prob:.2f} ({text})"
    scale = max(0.3, min(out.shape[:2]) / 600)
    draw_label(out, text, 0, 0, (255, 255, 255), scale)
    return out
