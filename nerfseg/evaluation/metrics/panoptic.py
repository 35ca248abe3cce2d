"""Panoptic quality (PQ/SQ/RQ) with panopticapi's semantics, exactly (SPEC 5, ref anchors 1.2-1.3).

Per frame: a GT segment and a predicted segment of the same category match when
IoU = |p and g| / (|p| + |g| - |p and g| - |p on GT void|) > 0.5 (strictly); GT crowd segments never match
and are never FN; an unmatched prediction whose pixels on GT void plus on the (last listed) crowd region of
its category exceed half its area is ignored, otherwise it is a FP; GT areas come from the JSON when given.
Per category TP/FP/FN/IoU-sum are summed over frames; PQ, SQ and RQ are each averaged separately over the
categories with TP+FP+FN > 0, for All, Things and Stuff. A split with no such category is ``None``
(panopticapi raises ZeroDivisionError, hotcoco returns -1).

:func:`pq_match` is the matching kernel on sparse (gt, pred, intersection) triples; the per-frame metric
here and the scene-level metric (``scene_panoptic.py``) both call it, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nerfseg.evaluation.metrics.base import Accumulator, fnum
from nerfseg.evaluation.metrics.frame import FIRST_SEGMENT, VOID_LABEL, FrameStats, frame_stats
from nerfseg.errors import InputError


#: a segment table: segment id -> {"category_id": ..., ...}
Segments = Mapping[int, Mapping[str, Any]]


class CategoryTable:
    """Category ids -> dense indices 0..C-1 (sorted by id) and the isthing flag of each."""

    def __init__(self, categories: Mapping[int, bool]):
        if not categories:
            raise ValueError("at least one category is needed")
        items = sorted((int(k), bool(v)) for k, v in categories.items())
        self.ids = np.array([k for k, _ in items], dtype=np.int64)
        self.isthing = np.array([v for _, v in items], dtype=bool)

    def __len__(self) -> int:
        return int(self.ids.size)

    def index(self, cat_ids: np.ndarray) -> np.ndarray:
        """Dense index of each category id, -1 where the id is not a known category."""
        cat_ids = np.asarray(cat_ids, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.ids, cat_ids), self.ids.size - 1)
        return np.where(self.ids[pos] == cat_ids, pos, -1)

    def as_config(self) -> list[list[int]]:
        return [[int(i), int(t)] for i, t in zip(self.ids, self.isthing)]


@dataclass(frozen=True)
class PQAssignment:
    """Which segments of one frame panopticapi's rule matches, per segment (the counts' provenance).

    ``gt_pred[i]``: the prediction column matched to GT row i, -1 when unmatched. ``gt_iou[i]``: the
    match's IoU (0 when unmatched). ``pred_gt[j]``: the GT row matched to prediction column j, -1 when
    unmatched. ``pred_fp[j]``: prediction j counts as a false positive (unmatched and not ignored for
    lying mostly on GT void/crowd). ``gt_fn[i]``: GT row i counts as a false negative (unmatched, not crowd).
    Plots colour segments from this, so a picture shows exactly the matches the metric counted.
    """

    gt_pred: np.ndarray
    gt_iou: np.ndarray
    pred_gt: np.ndarray
    pred_fp: np.ndarray
    gt_fn: np.ndarray


@dataclass(frozen=True)
class SparsePairs:
    """What panopticapi's matching reads of one frame (or one joined scene), in sparse form.

    ``g``/``p``/``inter``: GT row, prediction column and pixel count of every overlapping pair (GT void
    excluded). ``gt_cat``/``pred_cat``: dense category indices. ``gt_crowd``: crowd flag per GT row.
    ``gt_area``/``pred_area``: segment areas. ``pred_void``: pixels of each prediction on GT void.
    ``crowd_row[c]``: the GT row of category c's crowd region (-1: none), the only one panopticapi honours
    per category.
    """

    g: np.ndarray
    p: np.ndarray
    inter: np.ndarray
    gt_cat: np.ndarray
    gt_crowd: np.ndarray
    gt_area: np.ndarray
    pred_cat: np.ndarray
    pred_area: np.ndarray
    pred_void: np.ndarray
    crowd_row: np.ndarray


def pq_assign(pairs: SparsePairs) -> PQAssignment:
    """panopticapi's per-image matching on sparse pairs, per segment.

    IoU > 0.5 makes a match unique on both sides, so one assignment per segment is well defined.
    """
    g, p, inter = pairs.g, pairs.p, pairs.inter
    gt_cat, gt_crowd, gt_area = pairs.gt_cat, pairs.gt_crowd, pairs.gt_area
    pred_cat, pred_area, pred_void, crowd_row = pairs.pred_cat, pairs.pred_area, pairs.pred_void, pairs.crowd_row
    same = gt_cat[g] == pred_cat[p]
    cand = same & ~gt_crowd[g]
    union = pred_area[p] + gt_area[g] - inter - pred_void[p]
    iou = np.zeros(inter.shape, dtype=np.float64)
    np.divide(inter, union, out=iou, where=cand)
    match = cand & (iou > 0.5)
    mg, mp, miou = g[match], p[match], iou[match]

    gt_pred = np.full(gt_cat.size, -1, dtype=np.int64)
    gt_pred[mg] = mp
    gt_iou = np.zeros(gt_cat.size, dtype=np.float64)
    gt_iou[mg] = miou
    pred_gt = np.full(pred_cat.size, -1, dtype=np.int64)
    pred_gt[mp] = mg

    on_crowd = g == crowd_row[pred_cat[p]]
    crowd_inter = np.bincount(p[on_crowd], weights=inter[on_crowd], minlength=pred_cat.size)
    ignored = pred_void + crowd_inter
    frac = np.zeros(pred_cat.size, dtype=np.float64)
    np.divide(ignored, pred_area, out=frac, where=pred_area > 0)
    pred_fp = (pred_gt < 0) & ~(frac > 0.5)
    gt_fn = (gt_pred < 0) & ~gt_crowd
    return PQAssignment(gt_pred=gt_pred, gt_iou=gt_iou, pred_gt=pred_gt, pred_fp=pred_fp, gt_fn=gt_fn)


def pq_match(pairs: SparsePairs, num_categories: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """panopticapi's per-image matching on sparse pairs; returns per-category (tp, fp, fn, iou_sum).

    The counts are sums over :func:`pq_assign`'s per-segment assignment.
    """
    gt_cat, pred_cat = pairs.gt_cat, pairs.pred_cat
    c = num_categories
    a = pq_assign(pairs)
    matched = a.gt_pred >= 0
    tp = np.bincount(gt_cat[matched], minlength=c).astype(np.int64)
    iou_sum = np.bincount(gt_cat[matched], weights=a.gt_iou[matched], minlength=c).astype(np.float64)
    fn = np.bincount(gt_cat[a.gt_fn], minlength=c).astype(np.int64)
    fp = np.bincount(pred_cat[a.pred_fp], minlength=c).astype(np.int64)
    return tp, fp, fn, iou_sum


def pq_summary(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, iou_sum: np.ndarray, cats: CategoryTable) -> dict[str, Any]:
    """Per-category PQ/SQ/RQ and their All/Things/Stuff means, panopticapi's ``pq_average`` rules.

    Categories with TP+FP+FN == 0 are skipped (``None`` in ``per_class``, absent from ``n``); PQ, SQ and
    RQ are averaged separately; a split with n == 0 is ``None``.
    """
    tp = np.asarray(tp, dtype=np.int64)
    fp = np.asarray(fp, dtype=np.int64)
    fn = np.asarray(fn, dtype=np.int64)
    iou_sum = np.asarray(iou_sum, dtype=np.float64)
    den = tp + 0.5 * fp + 0.5 * fn
    seen = (tp + fp + fn) > 0
    pq = np.full(tp.shape, np.nan)
    rq = np.full(tp.shape, np.nan)
    sq = np.full(tp.shape, np.nan)
    np.divide(iou_sum, den, out=pq, where=seen)
    np.divide(tp, den, out=rq, where=seen)
    sq[seen] = 0.0
    np.divide(iou_sum, tp, out=sq, where=seen & (tp > 0))

    def split(mask: np.ndarray) -> dict[str, Any]:
        m = mask & seen
        n = int(m.sum())
        if n == 0:
            return {"pq": None, "sq": None, "rq": None, "n": 0}
        return {"pq": float(pq[m].sum() / n), "sq": float(sq[m].sum() / n), "rq": float(rq[m].sum() / n), "n": n}

    per_class = {
        int(cid): {
            "pq": fnum(pq[i]),
            "sq": fnum(sq[i]),
            "rq": fnum(rq[i]),
            "tp": int(tp[i]),
            "fp": int(fp[i]),
            "fn": int(fn[i]),
            "iou_sum": float(iou_sum[i]),
        }
        for i, cid in enumerate(cats.ids)
    }
    everything = np.ones(tp.shape, dtype=bool)
    return {
        "all": split(everything),
        "things": split(cats.isthing),
        "stuff": split(~cats.isthing),
        "per_class": per_class,
    }


def crowd_rows(gt_cat: np.ndarray, gt_crowd: np.ndarray, gt_order: np.ndarray, num_categories: int) -> np.ndarray:
    """Row of the crowd region panopticapi honours per category: the last crowd segment in JSON order."""
    out = np.full(num_categories, -1, dtype=np.int64)
    rows = np.flatnonzero(gt_crowd & (gt_cat >= 0))
    for r in rows[np.argsort(gt_order[rows], kind="stable")]:
        out[gt_cat[r]] = r
    return out


def _frame_pq_args(stats: FrameStats, cats: CategoryTable, source: str | Path | None) -> tuple[np.ndarray, SparsePairs]:
    """(GT rows kept, the :class:`SparsePairs` of :func:`pq_assign`/:func:`pq_match`) of one frame."""
    pred_cat = cats.index(stats.pred_cat)
    if (pred_cat < 0).any():
        bad = sorted(set(stats.pred_cat[pred_cat < 0].tolist()))
        raise InputError(None if source is None else Path(source), f"prediction uses unknown category ids {bad[:10]}")
    gt_cat_all = cats.index(stats.gt_cat)
    # GT segments of an unknown category can match nothing and their FN would land in a category nobody
    # reports (panopticapi's defaultdict), so they are left out; their pixels are not void either
    known = np.flatnonzero(gt_cat_all >= 0)
    m = stats.matrix
    inter_dense = m[FIRST_SEGMENT + known][:, FIRST_SEGMENT:]
    g, p = np.nonzero(inter_dense)
    inter = inter_dense[g, p]
    gt_cat = gt_cat_all[known]
    gt_crowd = stats.gt_crowd[known]
    crowd = crowd_rows(gt_cat, gt_crowd, stats.gt_order[known], len(cats))
    pairs = SparsePairs(
        g=g,
        p=p,
        inter=inter,
        gt_cat=gt_cat,
        gt_crowd=gt_crowd,
        gt_area=stats.gt_area[known].astype(np.float64),
        pred_cat=pred_cat,
        pred_area=m[:, FIRST_SEGMENT:].sum(axis=0),
        pred_void=m[VOID_LABEL, FIRST_SEGMENT:],
        crowd_row=crowd,
    )
    return known, pairs


def frame_pq_counts(stats: FrameStats, cats: CategoryTable, source: str | Path | None = None) -> tuple[np.ndarray, ...]:
    """(tp, fp, fn, iou_sum) per category for one frame, from its joint histogram."""
    _, pairs = _frame_pq_args(stats, cats, source)
    return pq_match(pairs, len(cats))


def frame_pq_assignment(stats: FrameStats, cats: CategoryTable, source: str | Path | None = None) -> dict[str, dict[int, Any]]:
    """One frame's matches by segment id, from the same kernel as :func:`frame_pq_counts`.

    Returns ``{"match": {gt id: pred id}, "iou": {gt id: IoU}, "fp": {pred ids counted FP},
    "fn": {GT ids counted FN}, "ignored": {pred ids neither matched nor FP}}`` (the last three as
    ``{id: category id}``). GT segments of categories outside ``cats`` are in none of them.
    """
    known, pairs = _frame_pq_args(stats, cats, source)
    a = pq_assign(pairs)
    gt_ids = stats.gt_ids[known]
    pred_ids = stats.pred_ids
    matched = np.flatnonzero(a.gt_pred >= 0)
    ignored = (a.pred_gt < 0) & ~a.pred_fp
    return {
        "match": {int(gt_ids[i]): int(pred_ids[a.gt_pred[i]]) for i in matched},
        "iou": {int(gt_ids[i]): float(a.gt_iou[i]) for i in matched},
        "fp": {int(pred_ids[j]): int(stats.pred_cat[j]) for j in np.flatnonzero(a.pred_fp)},
        "fn": {int(gt_ids[i]): int(stats.gt_cat[known][i]) for i in np.flatnonzero(a.gt_fn)},
        "ignored": {int(pred_ids[j]): int(stats.pred_cat[j]) for j in np.flatnonzero(ignored)},
    }


class PanopticQuality(Accumulator):
    """Per-frame panoptic quality over a dataset (panopticapi semantics).

    ``categories`` maps category id -> isthing. ``update`` takes one frame's GT ids/segments and predicted
    ids/segments (``{id: {"category_id", "iscrowd", "area"}}``; prediction areas always come from pixels).
    """

    def __init__(self, categories: Mapping[int, bool] | list[list[int]]):
        if isinstance(categories, list):
            categories = {int(k): bool(v) for k, v in categories}
        self.cats = CategoryTable(categories)
        c = len(self.cats)
        self.tp: np.ndarray
        self.fp: np.ndarray
        self.fn: np.ndarray
        self.iou_sum: np.ndarray
        self.num_frames: int
        for name in ("tp", "fp", "fn"):  # per category, in CategoryTable order
            self.add_state(name, lambda: np.zeros(c, dtype=np.int64), "sum")
        self.add_state("iou_sum", lambda: np.zeros(c, dtype=np.float64), "sum")
        self.add_state("num_frames", int, "sum")

    def _config(self) -> dict[str, Any]:
        return {"categories": self.cats.as_config()}

    def update(self, gt_ids: np.ndarray, gt_segments: Segments, pred_ids: np.ndarray, pred_segments: Segments, source: str | Path | None = None) -> None:
        """Add one frame from its id maps and segment tables (one pixel pass, then :meth:`update_stats`)."""
        self.update_stats(frame_stats(gt_ids, gt_segments, pred_ids, pred_segments, source), source)

    def update_stats(self, stats: FrameStats, source: str | Path | None = None) -> None:
        tp, fp, fn, iou_sum = frame_pq_counts(stats, self.cats, source)
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.iou_sum += iou_sum
        self.num_frames += 1

    def add_counts(self, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, iou_sum: np.ndarray) -> None:
        """Add per-category counts computed elsewhere (e.g. one frame's counts shared with a per-scene copy)."""
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.iou_sum += iou_sum

    def compute(self) -> dict[str, Any]:
        out = pq_summary(self.tp, self.fp, self.fn, self.iou_sum, self.cats)
        out["num_frames"] = self.num_frames
        return out
