"""Test-time augmentation and model ensembles, merged by class-aware NMS or weighted box fusion.

Every (model, view) pair runs on the batch; a view rescales the input to a multiple of the
models' largest stride, optionally flips it and turns it by quarter turns. Boxes found in a
view are mapped back to the input frame by the exact inverse (un-rotate, un-flip, divide by
the per-axis scale actually applied). Then:

- ``merge="nms"``: the decoded boxes of all pairs are pooled before one ``postprocess``
  (threshold, class-aware NMS, cap), as if one model had produced them all;
- ``merge="wbf"``: each pair is post-processed on its own and the T = models x views lists are
  fused by :func:`weighted_box_fusion` (Solovyev et al., "Weighted boxes fusion", 2021).

With no transforms and one model this is exactly the plain validator path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..boxes import iou_one_to_many
from ..config.schema import TTA_VIEWS
from ..models.decode import decode_model_outputs
from .postprocess import Detections, postprocess

__all__ = [
    "TRANSFORMS",
    "View",
    "build_views",
    "parse_transforms",
    "tta_predict",
    "ensemble_predict",
    "ensemble_kwargs",
    "weighted_box_fusion",
]

TRANSFORMS = TTA_VIEWS
DEFAULT_SCALES = (0.83, 1.0, 1.2)


@dataclass(frozen=True)
class View:
    """One augmented view: resize by ``scale``, then flip (left-right / up-down), then turn
    ``rot`` quarter turns counter-clockwise (as ``torch.rot90`` over (H, W))."""

    scale: float = 1.0
    flip: bool = False
    vflip: bool = False
    rot: int = 0


def parse_transforms(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """ "flip,scale" / ["flip", "scale"] / None -> validated tuple (an unknown name raises)."""
    if not spec:
        return ()
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    for s in items:
        if s not in TRANSFORMS:
            raise ValueError(f"unknown TTA transform {s!r}; choose from {', '.join(TRANSFORMS)}")
    return tuple(dict.fromkeys(items))


def build_views(
    transforms: Sequence[str] = ("flip", "scale"), scales: Sequence[float] = DEFAULT_SCALES
) -> list[View]:
    """Views for a transform set: every scale (1.0 only without "scale") x every flip setting
    ("flip" adds left-right, "vflip" up-down), plus, with "rot90", the identity turned 90,
    180 and 270 degrees. The identity view always comes first."""
    t = parse_transforms(transforms)
    sc = [1.0, *(s for s in scales if s != 1.0)] if "scale" in t else [1.0]
    flips = [(False, False)] + [(True, False)] * ("flip" in t) + [(False, True)] * ("vflip" in t)
    views = [View(s, f, v) for s in sc for f, v in flips]
    if "rot90" in t:
        views += [View(rot=k) for k in (1, 2, 3)]
    return views


def _apply(x: Tensor, view: View, stride: int) -> tuple[Tensor, tuple[float, float]]:
    """Augment (B, C, H, W) -> view image and the (sx, sy) scale factors actually applied."""
    h, w = x.shape[-2:]
    sx = sy = 1.0
    if view.scale != 1.0:
        nh = max(stride, round(h * view.scale / stride) * stride)
        nw = max(stride, round(w * view.scale / stride) * stride)
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
        sx, sy = nw / w, nh / h
    if view.flip:
        x = x.flip(-1)
    if view.vflip:
        x = x.flip(-2)
    if view.rot % 4:
        x = torch.rot90(x, view.rot % 4, dims=(-2, -1))
    return x, (sx, sy)


def _invert(boxes: Tensor, view: View, view_hw: tuple[int, int], s: tuple[float, float]) -> Tensor:
    """(..., 4) xyxy boxes in the view frame of size ``view_hw`` -> the input frame."""
    h, w = view_hw
    b = boxes
    for _ in range(view.rot % 4):
        # One counter-clockwise quarter turn sent input point (x, y) of a frame W wide to
        # (y, W - x); the frame before it was w_prev = h wide and h_prev = w high.
        b = torch.stack([h - b[..., 3], b[..., 0], h - b[..., 1], b[..., 2]], -1)
        h, w = w, h
    if view.vflip:
        b = torch.stack([b[..., 0], h - b[..., 3], b[..., 2], h - b[..., 1]], -1)
    if view.flip:
        b = torch.stack([w - b[..., 2], b[..., 1], w - b[..., 0], b[..., 3]], -1)
    if s != (1.0, 1.0):
        b = b / b.new_tensor([s[0], s[1], s[0], s[1]])
    return b


def _decoded_views(
    models: Sequence[nn.Module], x: Tensor, views: Sequence[View]
) -> list[tuple[Tensor, Tensor]]:
    """(boxes (B, N, 4) in the input frame, scores (B, N, K)) for every (model, view) pair."""
    stride = max(int(max(m.strides)) for m in models)
    out = []
    for view in views:
        xv, s = _apply(x, view, stride)
        for m in models:
            boxes, scores = decode_model_outputs(m, [o.float() for o in m(xv)])
            out.append((_invert(boxes, view, tuple(xv.shape[-2:]), s), scores))
    return out


def _np(a: np.ndarray | Tensor, dtype: type) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=dtype)


def weighted_box_fusion(
    boxes: Sequence[np.ndarray | Tensor],
    scores: Sequence[np.ndarray | Tensor],
    labels: Sequence[np.ndarray | Tensor],
    weights: Sequence[float] | None = None,
    iou_thr: float = 0.55,
    skip_thr: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fuse T lists of boxes (one per model / view) into one.

    boxes: T arrays (N_t, 4) xyxy; scores, labels: T arrays (N_t,). Per label, boxes are
    visited by descending weighted score (w_t * score); each joins the cluster whose current
    fused box overlaps it most if that IoU > ``iou_thr``, else starts a cluster. A cluster's box
    is the score-weighted mean of its members; its score is the mean weighted score times
    min(n, T) / sum(w), so a box that only some lists found is damped. Boxes scoring below
    ``skip_thr`` are dropped first. Returns boxes (M, 4), scores (M,), labels (M,), best first.
    """
    t = len(boxes)
    w = np.ones(t) if weights is None else np.asarray(weights, np.float64)
    if t == 0 or len(w) != t or len(scores) != t or len(labels) != t:
        if t == 0:
            return np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)
        raise ValueError("boxes, scores, labels (and weights) need one entry per list")
    ss = [_np(x, np.float64).reshape(-1) for x in scores]
    b = np.concatenate([_np(x, np.float64).reshape(-1, 4) for x in boxes])
    lab = np.concatenate([_np(x, np.int64).reshape(-1) for x in labels])
    raw = np.concatenate(ss)
    src = np.repeat(np.arange(t), [len(x) for x in ss])
    keep = raw >= skip_thr
    b, s, lab = b[keep], raw[keep] * w[src[keep]], lab[keep]
    out_b, out_s, out_l = [], [], []
    for c in np.unique(lab):
        idx = np.flatnonzero(lab == c)
        idx = idx[np.argsort(-s[idx], kind="stable")]
        fused = np.zeros((len(idx), 4))
        wsum = np.zeros(len(idx))  # sum of member scores
        wbox = np.zeros((len(idx), 4))  # sum of score * box
        count = np.zeros(len(idx), np.int64)
        m = 0
        for i in idx:
            j = -1
            if m:
                ious = iou_one_to_many(b[i], fused[:m])
                j = int(np.argmax(ious)) if ious.max() > iou_thr else -1
            if j < 0:
                j, m = m, m + 1
            wsum[j] += s[i]
            wbox[j] += s[i] * b[i]
            count[j] += 1
            fused[j] = wbox[j] / wsum[j]
        score = wsum[:m] / count[:m] * np.minimum(count[:m], t) / w.sum()
        out_b.append(fused[:m])
        out_s.append(score)
        out_l.append(np.full(m, c))
    if not out_b:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)
    fb, fs, fl = np.concatenate(out_b), np.concatenate(out_s), np.concatenate(out_l)
    order = np.argsort(-fs, kind="stable")
    return fb[order], fs[order], fl[order].astype(np.int64)


def ensemble_kwargs(tta, augment: bool, n_models: int) -> dict | None:
    """:func:`ensemble_predict` keyword arguments from the ``tta.*`` settings (a TTASection):
    all of them with test-time augmentation, only the merging for an ensemble of several
    weights, None for one model without augmentation (the plain path)."""
    if augment:
        return {
            "transforms": tta.transforms,
            "scales": tta.scales,
            "merge": tta.merge,
            "wbf_iou": tta.wbf_iou,
        }
    return {"merge": tta.merge, "wbf_iou": tta.wbf_iou} if n_models > 1 else None


def ensemble_predict(
    models: Sequence[nn.Module],
    images: Tensor,
    transforms: str | Sequence[str] = (),
    merge: str = "nms",
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 300,
    scales: Sequence[float] = DEFAULT_SCALES,
    views: Sequence[View] | None = None,
    weights: Sequence[float] | None = None,
    wbf_iou: float = 0.55,
) -> list[Detections]:
    """Detections of several models (and views) merged into one list per image.

    models: detectors with ``strides`` and ``reg_max`` whose ``forward`` returns raw maps (same
    classes); images: (B, 3, H, W) float in [0, 1], H and W multiples of the stride; transforms:
    names from :data:`TRANSFORMS` (or ``views`` explicitly); merge: "nms" or "wbf"; conf, iou,
    max_det: as :func:`postprocess`; weights: per model (WBF only); wbf_iou: WBF's cluster IoU.
    Returns B :class:`Detections` in the pixels of ``images`` (map them to the original image
    with ``scale_boxes_to_original`` as usual). Models run in eval mode and no_grad.
    """
    if merge not in ("nms", "wbf"):
        raise ValueError(f"merge must be 'nms' or 'wbf', got {merge!r}")
    models = list(models)
    if not models:
        raise ValueError("at least one model is needed")
    if len({int(m.nc) for m in models if hasattr(m, "nc")}) > 1:
        raise ValueError("ensembled models must predict the same classes")
    views = list(views) if views is not None else build_views(transforms, scales)
    modes = [m.training for m in models]
    try:
        for m in models:
            m.eval()
        with torch.no_grad():
            pairs = _decoded_views(models, images, views)
            if merge == "nms":
                boxes = torch.cat([p[0] for p in pairs], 1)
                return postprocess(boxes, torch.cat([p[1] for p in pairs], 1), conf, iou, max_det)
            per_pair = [postprocess(b, s, conf, iou, max_det) for b, s in pairs]
    finally:
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)
    # WBF weights are per model; pairs are ordered view-major, model-minor.
    w = None if weights is None else [float(weights[i % len(models)]) for i in range(len(pairs))]
    out = []
    for i in range(images.shape[0]):
        dets = [p[i] for p in per_pair]
        fb, fs, fl = weighted_box_fusion(
            [d.boxes for d in dets], [d.scores for d in dets], [d.classes for d in dets], w, wbf_iou
        )
        fb, fs, fl = fb[:max_det], fs[:max_det], fl[:max_det]
        dev = images.device
        out.append(
            Detections(
                torch.as_tensor(fb, dtype=torch.float32, device=dev),
                torch.as_tensor(fs, dtype=torch.float32, device=dev),
                torch.as_tensor(fl, dtype=torch.long, device=dev),
            )
        )
    return out


def tta_predict(
    model: nn.Module,
    images: Tensor,
    transforms: str | Sequence[str] = ("flip", "scale"),
    merge: str = "nms",
    **kwargs,
) -> list[Detections]:
    """Test-time augmentation of one model: :func:`ensemble_predict` with ``[model]``."""
    return ensemble_predict([model], images, transforms, merge, **kwargs)
