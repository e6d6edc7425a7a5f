"""Parity of an exported model with the PyTorch model on real images.

Both see the same letterboxed batch. Raw outputs (decoded boxes and class probabilities of every
anchor) must agree within :data:`BOX_TOL` pixels and :data:`SCORE_TOL`; after NMS every detection
of one side must have a partner on the other with the same class, boxes and score within the same
tolerances. A detection may exist on one side only where rounding decides it: its score within
SCORE_TOL of the threshold, or an NMS coin flip (a same-class overlap within IOU_TOL of the IoU
threshold, or above it with scores tied within SCORE_TOL, and one step of what that flip
suppressed), or, when ``max_det`` cut the list, a score within SCORE_TOL of the last one kept.
Those are counted (on both sides) as ``borderline``; any other unpaired detection is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.ops import box_iou

from ..data.images import read_image
from ..infer.postprocess import Detections, postprocess
from ..infer.preprocess import letterbox_batch
from ..infer.runtime import RAW_OUTPUTS, ExportedModel
from ..models.decode import decode_model_outputs

__all__ = ["BOX_TOL", "SCORE_TOL", "ParityReport", "letterboxed_batch", "check_parity"]

BOX_TOL = 0.05  # pixels of the network input
SCORE_TOL = 5e-4  # class probability
IOU_TOL = 0.01  # overlaps this close to the NMS threshold may go either way


@dataclass
class ParityReport:
    images: list[str]
    batch: int
    conf: float
    iou: float
    max_det: int
    runtime: str = "onnxruntime"  # what ran the exported model
    box_tol: float = BOX_TOL
    score_tol: float = SCORE_TOL
    raw_max_box_diff: float = 0.0
    raw_max_score_diff: float = 0.0
    detections_torch: int = 0
    detections_onnx: int = 0  # of the exported model, whichever runtime ran it
    matched: int = 0
    borderline: int = 0
    max_box_diff: float = 0.0
    max_score_diff: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED: " + "; ".join(self.failures[:3])
        return (
            f"parity on {len(self.images)} images (batch {self.batch}): raw max |box| diff "
            f"{self.raw_max_box_diff:.2e} px, |score| {self.raw_max_score_diff:.2e}; after NMS "
            f"{self.matched}/{self.detections_torch} torch detections matched "
            f"({self.detections_onnx} {self.runtime}, {self.borderline} borderline), max |box| "
            f"{self.max_box_diff:.2e} px, |score| {self.max_score_diff:.2e} (tolerance "
            f"{self.box_tol} px, {self.score_tol}) -> {verdict}"
        )


def letterboxed_batch(
    files: Sequence[str | os.PathLike], imgsz: int, stride: int | None = None
) -> Tensor:
    """Images -> (B, 3, H, W) float in [0, 1], letterboxed as ``Detector.predict`` does: on the
    imgsz square, or with ``stride`` on the smallest rectangle of its multiples holding them."""
    images = [read_image(f) for f in files]
    batch, _ = letterbox_batch(images, imgsz, stride=stride)
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(255).contiguous()


def _coin_flips(d: Detections, iou: float) -> np.ndarray:
    """(D, D) bool: pairs of same-class detections where rounding can decide which one NMS keeps:
    overlap near the threshold, or overlap above it with scores tied within SCORE_TOL."""
    o = box_iou(d.boxes, d.boxes).numpy()
    s, c = d.scores.numpy(), d.classes.numpy()
    same = (c[:, None] == c[None]) & ~np.eye(len(c), dtype=bool)
    near = np.abs(o - iou) <= IOU_TOL
    tied = (o > iou - IOU_TOL) & (np.abs(s[:, None] - s[None]) <= SCORE_TOL)
    return same & (near | tied)


def _match(a: Detections, b: Detections, conf: float, iou: float, rep: ParityReport,
           where: str) -> None:  # fmt: skip
    """Pair each detection of ``a`` (torch) with one of ``b`` (exported), greedily by score; explain
    the unpaired ones by a threshold or NMS coin flip, or report them as failures."""
    na = len(a)
    both = Detections(torch.cat([a.boxes, b.boxes]), torch.cat([a.scores, b.scores]),
                      torch.cat([a.classes, b.classes]))  # fmt: skip
    flips = _coin_flips(both, iou)
    cross = box_iou(both.boxes, both.boxes).numpy() > iou - IOU_TOL
    bs, bc = both.scores.numpy(), both.classes.numpy()
    paired = np.zeros(len(bs), bool)
    bb = both.boxes.numpy()
    for i in range(na):
        diff = np.abs(bb[na:] - bb[i]).max(1) if len(b) else np.zeros(0)
        ok = ~paired[na:] & (bc[na:] == bc[i]) & (diff <= rep.box_tol)
        ok &= np.abs(bs[na:] - bs[i]) <= rep.score_tol
        if ok.any():
            j = int(np.flatnonzero(ok)[np.argmin(diff[ok])])
            paired[[i, na + j]] = True
            rep.matched += 1
            rep.max_box_diff = max(rep.max_box_diff, float(diff[j]))
            rep.max_score_diff = max(rep.max_score_diff, float(abs(bs[na + j] - bs[i])))
    alone = np.flatnonzero(~paired)
    excused = (bs[alone] - conf <= rep.score_tol) | flips[alone].any(1)
    if max(na, len(b)) >= rep.max_det:  # the cap cut the list: its last places are a coin flip
        floor = max(float(a.scores.min()), float(b.scores.min()) if len(b) else 0.0)
        excused |= bs[alone] <= floor + rep.score_tol
    # one step of cascade: a box the other side dropped by a coin flip may have suppressed
    # (or failed to suppress) a box that overlaps it
    side = np.arange(len(bs)) >= na
    first = alone[excused]
    for k, i in enumerate(alone):
        if not excused[k]:
            excused[k] = bool((cross[i, first] & (side[first] != side[i])
                               & (bc[first] == bc[i])).any())  # fmt: skip
    rep.borderline += int(excused.sum())
    for i in alone[~excused]:
        who, other = ("torch", rep.runtime) if i < na else (rep.runtime, "torch")
        rep.failures.append(
            f"{where}: {who} class {int(bc[i])} score {bs[i]:.4f} not in the {other} output"
        )


@torch.no_grad()
def check_parity(
    model: nn.Module,
    runtime: ExportedModel,
    files: Sequence[str | os.PathLike],
    imgsz: int,
    conf: float,
    iou: float,
    max_det: int,
    batch: int,
    stride: int | None = None,
) -> ParityReport:
    """Run ``model`` (PyTorch, eval mode) and ``runtime`` on ``files`` in batches of ``batch``,
    letterboxed to the imgsz square, or with ``stride`` to rectangles as ``predict.rect``."""
    rep = ParityReport([os.fspath(f) for f in files], batch, conf, iou, max_det, runtime.runtime)
    for start in range(0, len(files), batch):
        x = letterboxed_batch(files[start : start + batch], imgsz, stride)
        boxes, scores = decode_model_outputs(model, [o.float() for o in model(x)])
        raw = runtime.run(x, conf, iou, max_det)
        for name, ref in zip(RAW_OUTPUTS, (boxes, scores), strict=True):
            got = raw[name]
            if got.shape != tuple(ref.shape):
                rep.failures.append(
                    f"{name}: {rep.runtime} shape {got.shape} != torch {tuple(ref.shape)}"
                )
                continue
            diff = float(np.abs(got - ref.numpy()).max()) if got.size else 0.0
            attr = "raw_max_box_diff" if name == "boxes" else "raw_max_score_diff"
            setattr(rep, attr, max(getattr(rep, attr), diff))
        ours = postprocess(boxes, scores, conf, iou, max_det)
        theirs = runtime.detect(x, conf, iou, max_det)
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            rep.detections_torch += len(a)
            rep.detections_onnx += len(b)
            _match(a, b, conf, iou, rep, os.fspath(files[start + i]))
    if rep.raw_max_box_diff > rep.box_tol:
        rep.failures.insert(0, f"raw boxes differ by {rep.raw_max_box_diff:.3g} px")
    if rep.raw_max_score_diff > rep.score_tol:
        rep.failures.insert(0, f"raw scores differ by {rep.raw_max_score_diff:.3g}")
    return rep
