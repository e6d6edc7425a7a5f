"""Accumulation step of the COCO evaluator: per-category precision/recall tables.

pycocotools, per (category, area range, max-dets): concatenates each image's score-sorted and
truncated detections, stable-sorts them by descending score, takes cumulative TP / FP counts,
precision ``tp / ((tp + fp) + eps)`` made non-increasing from the right, and samples it at the
first point whose recall ``tp / n_pos`` reaches each of the R recall thresholds.

Here everything is computed at TP events only, for all categories, IoU thresholds and area
ranges at once: the c-th TP is where recall first reaches c / n_pos, and the suffix maximum of
precision from there is the maximum over the later TPs (between TPs precision only falls).
Threshold 0 maps to the first detection, whose suffix maximum is the maximum over all TPs.

Shape letters as in ``_coco_core``; a "group" below is one (category, IoU threshold, area).
"""

from __future__ import annotations

import numpy as np

from detforge.boxes import pair_iou_ltwh
from detforge.eval import _coco_core as core
from detforge.eval._coco_core import group_rank, sort_detections

_EPS = float(np.spacing(1))  # pycocotools adds it to the precision denominator


def _tp_needed(n_pos: np.ndarray, rec_thrs: np.ndarray) -> np.ndarray:
    """(K, A) positives -> (K, A, R) smallest TP count c with c / n_pos >= each threshold.

    c / n_pos is evaluated as the same float division pycocotools' recall uses, so the
    comparisons agree exactly. Entries with n_pos == 0 get a count that is never reached.
    """
    need = np.full(n_pos.shape + rec_thrs.shape, np.iinfo(np.int32).max, dtype=np.int64)
    for npos in np.unique(n_pos[n_pos > 0]):
        steps = np.arange(npos + 1) / npos
        need[n_pos == npos] = np.searchsorted(steps, rec_thrs, side="left")
    return need


def accumulate(
    cat: np.ndarray,
    scores: np.ndarray,
    rank: np.ndarray,
    tp: np.ndarray,
    valid: np.ndarray,
    n_pos: np.ndarray,
    max_dets: np.ndarray,
    rec_thrs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision / recall / score tables in pycocotools' ``eval`` layout.

    cat, scores, rank: (D,) category index, score and rank inside the detection's (image,
    category) list, detections in (category, image, rank) order; tp, valid: (T, A, D) bool
    (valid = not ignored); n_pos: (K, A) non-ignored ground truths; max_dets: (M,) ascending;
    rec_thrs: (R,). Returns precision (T, R, K, A, M), recall (T, K, A, M) and scores
    (T, R, K, A, M), -1 where a category has no non-ignored ground truth in an area range.
    """
    n_thr, n_area, _ = tp.shape
    n_cat, n_rec = n_pos.shape[0], rec_thrs.shape[0]
    rows = n_thr * n_area  # row r = t * A + a
    n_grp = n_cat * rows  # group g = k * rows + r
    precision = -np.ones((n_thr, n_rec, n_cat, n_area, len(max_dets)))
    recall = -np.ones((n_thr, n_cat, n_area, len(max_dets)))
    score_tab = -np.ones_like(precision)
    if n_cat == 0:
        return precision, recall, score_tab

    # Merge images per category: by category, descending score, ties in (image, rank) order.
    order = sort_detections(cat, scores)
    cat, scores, rank = cat[order], scores[order], rank[order]
    # np.take, not tp[:, :, order]: that result is not C-contiguous and every later row-wise
    # cumsum / reshape on it would be several times slower.
    tp, valid = np.take(tp, order, axis=2), np.take(valid, order, axis=2)

    g_area = np.tile(np.arange(n_area), n_cat * n_thr)  # area index of each group
    g_cat = np.repeat(np.arange(n_cat), rows)
    need = _tp_needed(n_pos, rec_thrs)[g_cat, g_area]  # (G, R)
    g_pos = n_pos[g_cat, g_area]  # (G,)
    live = (n_pos > 0)[None].repeat(n_thr, 0)  # (T, K, A)

    for m, md in enumerate(max_dets):
        sel = np.flatnonzero(rank < md)
        n = sel.shape[0]
        c_m, s_m = cat[sel], scores[sel]
        start = np.searchsorted(c_m, np.arange(n_cat + 1))  # category bounds in the list
        tp_m = np.take(tp, sel, axis=2).reshape(rows, n)
        # int32: a bool cumsum into int64 is several times slower, and counts stay < 2**31.
        n_valid = np.cumsum(np.take(valid, sel, axis=2).reshape(rows, n), axis=1, dtype=np.int32)
        # Valid count just before each category starts, to restart the running count there.
        before = np.zeros((rows, n_cat), dtype=np.int32)
        nz = start[:-1] > 0
        before[:, nz] = n_valid[:, start[:-1][nz] - 1]

        # TP events, row-major; flatnonzero is much faster than a 2-D nonzero.
        r, p = np.divmod(np.flatnonzero(tp_m), max(n, 1))
        k = c_m[p]
        ev = np.argsort(k, kind="stable")  # -> (category, row, position) order
        r, p, k = r[ev], p[ev], k[ev]
        gid = k * rows + r
        j = group_rank(gid) + 1  # this event is the j-th TP of its group
        pr = j / ((n_valid[r, p] - before[r, k]).astype(np.float64) + _EPS)
        n_tp = np.bincount(gid, minlength=n_grp)
        g_start = np.cumsum(n_tp) - n_tp
        g_end = g_start + n_tp

        # Max precision over events [first TP reaching threshold q, group end): reduceat over
        # chunks between consecutive sample points, then a suffix maximum over q.
        found = need <= n_tp[:, None]  # (G, R)
        idx = g_start[:, None] + np.minimum(np.maximum(need - 1, 0), n_tp[:, None])
        bounds = np.concatenate([idx, g_end[:, None]], axis=1).ravel()
        chunk = np.maximum.reduceat(np.append(pr, 0.0), bounds).reshape(n_grp, n_rec + 1)
        # A chunk starting at its group's end is not found and would read the next group.
        chunk = np.where(idx < g_end[:, None], chunk[:, :n_rec], 0.0)
        best = np.maximum.accumulate(chunk[:, ::-1], axis=1)[:, ::-1]
        q = np.where(found, best, 0.0)

        # Score at the sample point: the c-th TP's, or the category's first detection for c = 0.
        ev_score = np.append(s_m[p], 0.0)
        first = np.where(start[1:] > start[:-1], np.append(s_m, 0.0)[start[:-1]], 0.0)
        at = np.minimum(idx, ev_score.shape[0] - 1)
        ss = np.where(need == 0, first[g_cat][:, None], ev_score[at])
        ss = np.where(found, ss, 0.0)

        with np.errstate(divide="ignore", invalid="ignore"):
            rc = n_tp / g_pos  # (G,)
        # (K, T, A[, R]) -> pycocotools' (T[, R], K, A), keeping -1 where n_pos == 0.
        rc = rc.reshape(n_cat, n_thr, n_area).transpose(1, 0, 2)
        recall[..., m] = np.where(live, rc, -1.0)
        q = q.reshape(n_cat, n_thr, n_area, n_rec).transpose(1, 3, 0, 2)
        precision[..., m] = np.where(live[:, None], q, -1.0)
        ss = ss.reshape(n_cat, n_thr, n_area, n_rec).transpose(1, 3, 0, 2)
        score_tab[..., m] = np.where(live[:, None], ss, -1.0)
    return precision, recall, score_tab


def evaluate_arrays(
    dets: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    gts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    n_img: int,
    n_cat: int,
    iou_thresholds: np.ndarray,
    area_ranges: np.ndarray,
    max_dets: tuple[int, ...],
    rec_thrs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole evaluation on flat arrays -> precision (T,R,K,A,M), recall (T,K,A,M), scores.

    dets: image rank (D,) (position in sorted image-id order), ltwh boxes (D, 4), scores (D,),
    category index (D,); gts: image rank (G,), ltwh boxes (G, 4), category index (G,), crowd
    (G,) bool, area (G,). Rows of one image are in input order. area_ranges: (A, 2).
    """
    d_img, d_box, d_score, d_k = dets
    g_img, g_box, g_k, g_crowd, g_area = gts
    # Detections: group (category, image), score order inside, at most max(max_dets) each.
    d_group = d_k * n_img + d_img
    order = sort_detections(d_group, d_score)
    rank = group_rank(d_group[order])
    order, rank = order[rank < max_dets[-1]], rank[rank < max_dets[-1]]
    d_box, d_score, d_k, d_group = d_box[order], d_score[order], d_k[order], d_group[order]
    # Ground truth: grouped the same way, input order kept inside a group.
    g_group = g_k * n_img + g_img
    g_order = np.argsort(g_group, kind="stable")
    g_box, g_crowd, g_area = g_box[g_order], g_crowd[g_order], g_area[g_order]
    g_k, g_group = g_k[g_order], g_group[g_order]

    thr = np.minimum(iou_thresholds, 1 - 1e-10)  # pycocotools caps thresholds below 1
    pair_det, pair_gt = core.candidate_pairs(d_group, g_group)
    iou = pair_iou_ltwh(d_box[pair_det], g_box[pair_gt], g_crowd[pair_gt])
    useful = iou >= thr.min()  # a pair below every threshold can never match
    lo, hi = area_ranges[:, :1], area_ranges[:, 1:]
    # pycocotools' "area < lo or area > hi" test, negated so NaN areas behave the same.
    g_regular = ~g_crowd[None, :] & ~((g_area < lo) | (g_area > hi))  # (A, G)
    d_area = d_box[:, 2] * d_box[:, 3]
    d_outside = (d_area < lo) | (d_area > hi)  # (A, D)
    matched, matched_ign = core.greedy_match(
        pair_det[useful], pair_gt[useful], iou[useful], d_group,
        g_crowd, g_regular, thr, d_box.shape[0],
    )  # fmt: skip
    ignored = matched_ign | (~matched & d_outside[None])
    n_pos = np.stack([np.bincount(g_k[r], minlength=n_cat) for r in g_regular], axis=1)
    return accumulate(
        d_k, d_score, rank, matched & ~ignored, ~ignored, n_pos, np.asarray(max_dets), rec_thrs
    )
