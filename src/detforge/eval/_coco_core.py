"""Vectorised kernels behind :class:`detforge.eval.coco.COCOEvaluator`.

The algorithm is pycocotools' COCOeval for ``iouType="bbox"`` (per image and category greedy
matching, then accumulation over images), restated on flat numpy arrays so that no Python loop
runs per detection. Everything here is written to reproduce pycocotools bit for bit, so several
places compute a value in a particular order on purpose; the comments say which.

Shape letters: T IoU thresholds, R recall thresholds, K categories, A area ranges, M max-dets
settings, D detections, G ground-truth boxes, P candidate (detection, ground truth) pairs.
"""

from __future__ import annotations

import numpy as np


def group_rank(keys: np.ndarray) -> np.ndarray:
    """Position of each element inside its run of equal ``keys``.

    keys: (N,) sorted, so equal keys are contiguous -> (N,) int64 ranks (0 for each run start).
    """
    n = keys.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.arange(n, dtype=np.int64)
    starts = np.ones(n, dtype=bool)
    starts[1:] = keys[1:] != keys[:-1]
    return idx - np.maximum.accumulate(np.where(starts, idx, 0))


def sort_detections(group: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Order detections by group, then by descending score, ties kept in input order.

    pycocotools sorts each (image, category) list by ``-score`` with a stable mergesort, so among
    equal scores the earlier detection comes first. Two stable sorts give the same order.
    group: (D,) int64, scores: (D,) float64 -> (D,) int64 permutation.
    """
    by_score = np.argsort(-scores, kind="stable")
    return by_score[np.argsort(group[by_score], kind="stable")]


def candidate_pairs(det_group: np.ndarray, gt_group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (detection, ground truth) pairs that share a group, in detection-major order.

    det_group: (D,) int64, gt_group: (G,) int64 sorted ascending -> (pair_det, pair_gt), (P,) each.
    Within one detection the ground truths keep their sorted order (their input order per group).
    """
    lo = np.searchsorted(gt_group, det_group, side="left")
    cnt = np.searchsorted(gt_group, det_group, side="right") - lo
    total = int(cnt.sum())
    pair_det = np.repeat(np.arange(det_group.shape[0], dtype=np.int64), cnt)
    block_start = np.repeat(np.cumsum(cnt) - cnt, cnt)
    pair_gt = np.repeat(lo, cnt) + (np.arange(total, dtype=np.int64) - block_start)
    return pair_det, pair_gt


def greedy_match(
    pair_det: np.ndarray,
    pair_gt: np.ndarray,
    pair_iou: np.ndarray,
    det_group: np.ndarray,
    gt_crowd: np.ndarray,
    gt_regular: np.ndarray,
    thresholds: np.ndarray,
    n_det: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy COCO matching for every IoU threshold and area range at once.

    Per group, detections are visited in score order; each takes, among the ground truths still
    free (crowds always are), the one with the highest IoU >= threshold, preferring any regular
    ground truth over an ignored one and, on equal IoU, the later one in ground-truth order.
    That is exactly what pycocotools' loop over ignore-last-sorted ground truths selects.

    Detections of different groups never compete, so step ``s`` handles the ``s``-th paired
    detection of every group together; only the number of steps is a Python loop.

    pair_det, pair_gt: (P,) int64 sorted by detection (detections in group/score order);
    pair_iou: (P,); det_group: (D,) int64; gt_crowd: (G,) bool; gt_regular: (A, G) bool, True
    for a non-crowd ground truth inside the area range; thresholds: (T,) effective thresholds.
    Returns matched (T, A, D) bool and matched_ignored (T, A, D) bool (matched to an ignored
    ground truth, so the detection is ignored too).
    """
    n_thr, (n_area, n_gt) = thresholds.shape[0], gt_regular.shape
    matched = np.zeros((n_thr, n_area, n_det), dtype=bool)
    matched_ignored = np.zeros_like(matched)
    n_pairs = pair_det.shape[0]
    if n_pairs == 0:
        return matched, matched_ignored

    first = np.ones(n_pairs, dtype=bool)
    first[1:] = pair_det[1:] != pair_det[:-1]
    cand = pair_det[first]  # (C,) detections with at least one pair, in group/score order
    per_cand = np.diff(np.append(np.flatnonzero(first), n_pairs))
    step = group_rank(det_group[cand])

    # Reorder candidates and their pair blocks by step; stable, so blocks stay contiguous.
    cand_order = np.argsort(step, kind="stable")
    pair_order = np.argsort(np.repeat(step, per_cand), kind="stable")
    cand = cand[cand_order]
    seg_start = np.cumsum(per_cand[cand_order]) - per_cand[cand_order]
    step_cand = np.append(0, np.cumsum(np.bincount(step)))
    p_gt = pair_gt[pair_order]
    p_iou = pair_iou[pair_order]

    # One integer key ranks candidates: regular first, then IoU, then ground-truth position.
    iou_rank = np.unique(p_iou, return_inverse=True)[1].astype(np.int64)
    n_rank = int(iou_rank.max()) + 1
    key = iou_rank * n_gt + p_gt
    key_a = key[None, :] + gt_regular[:, p_gt].astype(np.int64) * (n_rank * n_gt)  # (A, P)
    iou_ok = p_iou[None, :] >= thresholds[:, None]  # (T, P)
    crowd_p = gt_crowd[p_gt]

    taken = np.zeros((n_thr, n_area, n_gt), dtype=bool)
    for s in range(step_cand.shape[0] - 1):
        c0, c1 = step_cand[s], step_cand[s + 1]
        p0 = seg_start[c0]
        p1 = seg_start[c1] if c1 < cand.shape[0] else n_pairs
        g = p_gt[p0:p1]
        usable = (crowd_p[p0:p1] | ~taken[:, :, g]) & iou_ok[:, None, p0:p1]
        k = np.where(usable, key_a[None, :, p0:p1], -1)
        best = np.maximum.reduceat(k, seg_start[c0:c1] - p0, axis=2)  # (T, A, c1 - c0)
        ti, ai, ci = np.nonzero(best >= 0)
        gb = best[ti, ai, ci] % n_gt
        taken[ti, ai, gb] = True
        det = cand[c0 + ci]
        matched[ti, ai, det] = True
        matched_ignored[ti, ai, det] = ~gt_regular[ai, gb]
    return matched, matched_ignored
