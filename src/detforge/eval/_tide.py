"""TIDE error classification and oracle AP (Bolya et al., "TIDE: A General Toolbox for
Identifying Object Detection Errors", ECCV 2020), computed on flat numpy arrays.

Matching is COCO's at the foreground threshold t_f (0.5), per image and class, after keeping
the ``max_dets`` best detections of each (image, class) as COCOeval does. Every false positive
(a kept, non-ignored detection without a match) gets exactly one type, tested in this order
(the order of the authors' reference implementation; the paper's definitions overlap only when
a box touches ground truth of its own and of another class):

- Dupe: IoU >= t_f with a ground truth of its class (already taken by a higher-scoring one);
- Loc: t_b <= max IoU with its own class < t_f;
- Cls: max IoU with another class >= t_f;
- Both: max IoU with any ground truth >= t_b (so another class, in [t_b, t_f));
- Bkg: everything else (IoU < t_b with all ground truth).

Crowd regions only serve to ignore the detections they absorb. An unmatched ground truth is a
Miss unless it is the target (best-overlapping box) of a Cls or Loc error.

Oracles, each applied alone to the baseline: Cls - give the detection its target's class, Loc -
move it onto its target (either becomes a true positive if the target is still free, else it is
suppressed, as a duplicate would be); Both, Dupe, Bkg - suppress the detection; Miss - remove
the missed ground truth from the count. dAP = AP50 with the fix - baseline AP50, both with
pycocotools' 101-point interpolation over the "all" area range (classes without ground truth
are left out of the mean, as in COCO; a class whose every ground truth a Miss fix removes
drops out too, and if no class is left the fixed AP counts as 1: nothing is left to miss).
The special errors "fp" (suppress every false positive) and "fn" (remove every unmatched
ground truth) are reported alongside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..boxes import coco_iou_matrix
from ._match import ImageRecord, match_image, score_order

ERROR_TYPES: tuple[str, ...] = ("cls", "loc", "both", "dupe", "bkg", "miss")
_DET_TYPES = ERROR_TYPES[:5]  # codes 0..4 in ``TideData.d_err``; -1 = true positive/ignored
_EPS = float(np.spacing(1))
_REC_THRS = np.linspace(0.0, 1.0, 101)


@dataclass
class TideData:
    """Flat per-detection (D) and per-ground-truth (G) arrays, detections in (image, descending
    score) order. d_match (the true positive's ground truth) and d_target (an error's target)
    index the G arrays; -1 where there is none."""

    d_img: np.ndarray
    d_cls: np.ndarray
    d_score: np.ndarray
    d_box: np.ndarray
    d_tp: np.ndarray
    d_ignored: np.ndarray
    d_err: np.ndarray
    d_target: np.ndarray
    d_match: np.ndarray
    d_iou: np.ndarray
    g_img: np.ndarray
    g_cls: np.ndarray
    g_box: np.ndarray
    g_area: np.ndarray
    g_crowd: np.ndarray
    g_matched: np.ndarray
    g_missed: np.ndarray
    num_classes: int

    def n_gt(self) -> np.ndarray:
        """(K,) non-crowd ground truths per class."""
        return np.bincount(self.g_cls[~self.g_crowd], minlength=self.num_classes)


def _keep_top(rec: ImageRecord, max_dets: int) -> np.ndarray:
    """Indices of the ``max_dets`` best detections per class, in descending score order."""
    order = score_order(rec.scores)
    cls = rec.classes[order]
    rank = np.zeros(len(order), np.int64)
    for c in np.unique(cls):
        m = cls == c
        rank[m] = np.arange(int(m.sum()))
    return order[rank < max_dets]


def _classify_image(rec: ImageRecord, t_f: float, t_b: float) -> tuple[np.ndarray, ...]:
    """(gt_index, match_iou, ignored, err, target) per detection of an already sorted record."""
    n, m = len(rec.scores), len(rec.gt_classes)
    ious = coco_iou_matrix(rec.boxes, rec.gt_boxes, rec.gt_crowd)
    gt_index, miou, ignored = match_image(rec, t_f, ious)
    err, target = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    if n == 0:
        return gt_index, miou, ignored, err, target
    if m == 0:
        err[:] = _DET_TYPES.index("bkg")
        return gt_index, miou, ignored, err, target
    same = rec.classes[:, None] == rec.gt_classes[None, :]
    regular = ~rec.gt_crowd[None, :]
    iou_s = np.where(same & regular, ious, -1.0)
    iou_o = np.where(~same & regular, ious, -1.0)
    best_s, arg_s = iou_s.max(1), iou_s.argmax(1)
    best_o, arg_o = iou_o.max(1), iou_o.argmax(1)
    thr = min(t_f, 1 - 1e-10)  # the same capped threshold the matching used
    fp = (gt_index < 0) & ~ignored
    rules = [
        ("dupe", best_s >= thr, arg_s),
        ("loc", best_s >= t_b, arg_s),
        ("cls", best_o >= thr, arg_o),
        ("both", np.maximum(best_s, best_o) >= t_b, -1),
        ("bkg", np.ones(n, bool), -1),
    ]
    left = fp.copy()
    for name, cond, tgt in rules:
        hit = left & cond
        err[hit] = _DET_TYPES.index(name)
        target[hit] = tgt[hit] if isinstance(tgt, np.ndarray) else -1
        left &= ~hit
    return gt_index, miou, ignored, err, target


def classify(
    records: list[ImageRecord],
    num_classes: int,
    t_f: float = 0.5,
    t_b: float = 0.1,
    max_dets: int = 100,
) -> TideData:
    """Match and label every detection and ground truth of ``records`` (see module doc)."""
    d_parts: list[list[np.ndarray]] = [[] for _ in range(10)]
    g_parts: list[list[np.ndarray]] = [[] for _ in range(6)]
    offset = 0
    for i, rec in enumerate(records):
        keep = _keep_top(rec, max_dets)
        sub = ImageRecord(
            rec.image_id, rec.boxes[keep], rec.scores[keep], rec.classes[keep],
            rec.gt_boxes, rec.gt_classes, rec.gt_crowd, rec.gt_area, rec.path,
        )  # fmt: skip
        gt_index, miou, ignored, err, target = _classify_image(sub, t_f, t_b)
        matched = np.zeros(len(rec.gt_classes), bool)
        matched[gt_index[(gt_index >= 0) & ~ignored]] = True
        tp = (gt_index >= 0) & ~ignored
        glob = np.where(target >= 0, target + offset, -1)
        match = np.where(tp, gt_index + offset, -1)
        cols = [np.full(len(keep), i), sub.classes, sub.scores, sub.boxes, tp, ignored, err, glob]
        for part, col in zip(d_parts, [*cols, match, miou], strict=True):
            part.append(col)
        g_cols = [np.full(len(matched), i), rec.gt_classes, rec.gt_boxes, rec.gt_area]
        for part, col in zip(g_parts, [*g_cols, rec.gt_crowd, matched], strict=True):
            part.append(col)
        offset += len(matched)
    shapes = [(0,), (0,), (0,), (0, 4), (0,), (0,), (0,), (0,), (0,), (0,)]
    d = [np.concatenate(p) if p else np.zeros(s) for p, s in zip(d_parts, shapes, strict=True)]
    g_shapes = [(0,), (0,), (0, 4), (0,), (0,), (0,)]
    g = [np.concatenate(p) if p else np.zeros(s) for p, s in zip(g_parts, g_shapes, strict=True)]
    d_err, d_target = d[6].astype(np.int64), d[7].astype(np.int64)
    g_crowd, g_matched = g[4].astype(bool), g[5].astype(bool)
    # Ground truths a Cls or Loc error points at are explained by that error, not missed.
    covered = np.zeros(len(g_crowd), bool)
    explained = np.isin(d_err, [_DET_TYPES.index("cls"), _DET_TYPES.index("loc")])
    covered[d_target[explained]] = True
    g_missed = ~g_crowd & ~g_matched & ~covered
    return TideData(
        d[0].astype(np.int64), d[1].astype(np.int64), d[2].astype(np.float64), d[3],
        d[4].astype(bool), d[5].astype(bool), d_err, d_target, d[8].astype(np.int64),
        d[9].astype(np.float64),
        g[0].astype(np.int64), g[1].astype(np.int64), g[2], g[3].astype(np.float64),
        g_crowd, g_matched, g_missed, num_classes,
    )  # fmt: skip


def coco_ap(
    cls: np.ndarray, score: np.ndarray, tp: np.ndarray, n_gt: np.ndarray, num_classes: int
) -> np.ndarray:
    """Per-class AP with pycocotools' 101-point interpolation.

    cls, score, tp: (D,) the counted (non-ignored) detections in (image, descending score)
    order, so a stable sort by score breaks ties as pycocotools does; n_gt: (K,) positives.
    Returns (K,) AP, -1 for classes without ground truth.
    """
    ap = -np.ones(num_classes)
    for k in range(num_classes):
        if n_gt[k] <= 0:
            continue
        sel = np.flatnonzero(cls == k)
        hits = tp[sel][np.argsort(-score[sel], kind="stable")]
        tp_sum = np.cumsum(hits).astype(np.float64)
        fp_sum = np.cumsum(~hits).astype(np.float64)
        rc = tp_sum / n_gt[k]
        pr = tp_sum / (fp_sum + tp_sum + _EPS)
        pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision envelope, as pycocotools
        inds = np.searchsorted(rc, _REC_THRS, side="left")
        q = np.zeros(len(_REC_THRS))
        ok = inds < len(pr)
        q[ok] = pr[inds[ok]]
        ap[k] = q.mean()
    return ap


def mean_defined(ap: np.ndarray) -> float:
    """Mean over classes with ground truth (AP > -1), -1 if there are none."""
    v = ap[ap > -1]
    return float(v.mean()) if v.size else -1.0


def _fix_to_target(t: TideData, code: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cls/Loc oracle: errors of ``code`` take their free target (first come, in score order
    per image) and become true positives; the others are suppressed. Returns keep, cls, tp."""
    keep, cls, tp = ~t.d_ignored, t.d_cls.copy(), t.d_tp.copy()
    claimed = t.g_matched.copy()
    for d in np.flatnonzero(t.d_err == code):
        g = t.d_target[d]
        if claimed[g]:
            keep[d] = False
        else:
            claimed[g], tp[d] = True, True
            cls[d] = t.g_cls[g]  # no-op for Loc: its target has its class
    return keep, cls, tp


def oracle_ap(t: TideData) -> dict[str, np.ndarray]:
    """Per-class AP50 (K,) for the baseline and with each error type fixed alone.

    Keys: "base", the six ERROR_TYPES, and "fp" / "fn" (every false positive suppressed /
    every unmatched ground truth removed).
    """
    k, n_gt = t.num_classes, t.n_gt()
    valid = ~t.d_ignored
    out = {"base": coco_ap(t.d_cls[valid], t.d_score[valid], t.d_tp[valid], n_gt, k)}
    for name in ERROR_TYPES:
        cls, tp, gts = t.d_cls, t.d_tp, n_gt
        if name in ("cls", "loc"):
            keep, cls, tp = _fix_to_target(t, _DET_TYPES.index(name))
        elif name == "miss":
            keep = valid
            gts = n_gt - np.bincount(t.g_cls[t.g_missed], minlength=k)
        else:
            keep = valid & (t.d_err != _DET_TYPES.index(name))
        out[name] = coco_ap(cls[keep], t.d_score[keep], tp[keep], gts, k)
    keep = valid & t.d_tp
    out["fp"] = coco_ap(t.d_cls[keep], t.d_score[keep], t.d_tp[keep], n_gt, k)
    unmatched = ~t.g_crowd & ~t.g_matched
    gts = n_gt - np.bincount(t.g_cls[unmatched], minlength=k)
    out["fn"] = coco_ap(t.d_cls[valid], t.d_score[valid], t.d_tp[valid], gts, k)
    return out


def delta_ap(aps: dict[str, np.ndarray]) -> dict[str, float]:
    """{fix: mAP50 with the fix - baseline mAP50} from :func:`oracle_ap`'s tables (0 when the
    baseline itself is undefined: no ground truth at all)."""
    base = mean_defined(aps["base"])
    if base < 0:
        return {k: 0.0 for k in aps if k != "base"}
    out = {}
    for k, ap in aps.items():
        if k != "base":
            fixed = mean_defined(ap)
            out[k] = (1.0 if fixed < 0 else fixed) - base
    return out
