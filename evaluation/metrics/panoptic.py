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
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.metrics.base import Accumulator, fnum
from evaluation.metrics.frame import FIRST_SEGMENT, VOID_LABEL, FrameStats, frame_stats
from nerfseg.errors import InputError


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


def pq_match(
    g: np.ndarray,
    p: np.ndarray,
    inter: np.ndarray,
    gt_cat: np.ndarray,
    gt_crowd: np.ndarray,
    gt_area: np.ndarray,
    pred_cat: np.ndarray,
    pred_area: np.ndarray,
    pred_void: np.ndarray,
    crowd_row: np.ndarray,
    num_categories: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """panopticapi's per-image matching on sparse pairs; returns per-category (tp, fp, fn, iou_sum).

    ``g``/``p``/``inter``: GT row, prediction column and pixel count of every overlapping pair (GT void
    excluded). ``gt_cat``/``pred_cat``: dense category indices. ``pred_void``: pixels of each prediction on
    GT void. ``crowd_row[c]``: the GT row of category c's crowd region (-1: none), the only one panopticapi
    honours per category.
    """
    c = num_categories
    same = gt_cat[g] == pred_cat[p]
    cand = same & ~gt_crowd[g]
    union = pred_area[p] + gt_area[g] - inter - pred_void[p]
    iou = np.zeros(inter.shape, dtype=np.float64)
    np.divide(inter, union, out=iou, where=cand)
    match = cand & (iou > 0.5)
    mg, mp, miou = g[match], p[match], iou[match]
    tp = np.bincount(gt_cat[mg], minlength=c).astype(np.int64)
    iou_sum = np.bincount(gt_cat[mg], weights=miou, minlength=c).astype(np.float64)

    gt_matched = np.zeros(gt_cat.size, dtype=bool)
    gt_matched[mg] = True
    fn = np.bincount(gt_cat[~gt_matched & ~gt_crowd], minlength=c).astype(np.int64)

    pred_matched = np.zeros(pred_cat.size, dtype=bool)
    pred_matched[mp] = True
    on_crowd = g == crowd_row[pred_cat[p]]
    crowd_inter = np.bincount(p[on_crowd], weights=inter[on_crowd], minlength=pred_cat.size)
    ignored = pred_void + crowd_inter
    frac = np.zeros(pred_cat.size, dtype=np.float64)
    np.divide(ignored, pred_area, out=frac, where=pred_area > 0)
    fp_mask = ~pred_matched & ~(frac > 0.5)
    fp = np.bincount(pred_cat[fp_mask], minlength=c).astype(np.int64)
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


def frame_pq_counts(stats: FrameStats, cats: CategoryTable, source: str | Path | None = None) -> tuple[np.ndarray, ...]:
    """(tp, fp, fn, iou_sum) per category for one frame, from its joint histogram."""
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
    return pq_match(
        g,
        p,
        inter,
        gt_cat,
        gt_crowd,
        stats.gt_area[known].astype(np.float64),
        pred_cat,
        m[:, FIRST_SEGMENT:].sum(axis=0),
        m[VOID_LABEL, FIRST_SEGMENT:],
        crowd,
        len(cats),
    )


class PanopticQuality(Accumulator):
    """Per-frame panoptic quality over a dataset (panopticapi semantics).

    ``categories`` maps category id -> isthing. ``update`` takes one frame's GT ids/segments and predicted
    ids/segments (``{id: {"category_id", "iscrowd", "area"}}``; prediction areas always come from pixels).
    """

    def __init__(self, categories: Mapping[int, bool] | list[list[int]]):
        if isinstance(categories, list):
            categories = {int(k): bool(v) for k, v in categories}
        self.cats = CategoryTable(categories)
        self.reset()

    def _config(self) -> dict[str, Any]:
        return {"categories": self.cats.as_config()}

    def reset(self) -> None:
        c = len(self.cats)
        self.tp = np.zeros(c, dtype=np.int64)
        self.fp = np.zeros(c, dtype=np.int64)
        self.fn = np.zeros(c, dtype=np.int64)
        self.iou_sum = np.zeros(c, dtype=np.float64)
        self.num_frames = 0

    def update(
        self,
        gt_ids: np.ndarray,
        gt_segments: Mapping[int, Mapping[str, Any]],
        pred_ids: np.ndarray,
        pred_segments: Mapping[int, Mapping[str, Any]],
        source: str | Path | None = None,
    ) -> None:
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

    def merge(self, other: PanopticQuality) -> PanopticQuality:
        self._check_same(other)
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.iou_sum += other.iou_sum
        self.num_frames += other.num_frames
        return self

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self._config(),
            "tp": self.tp.copy(),
            "fp": self.fp.copy(),
            "fn": self.fn.copy(),
            "iou_sum": self.iou_sum.copy(),
            "num_frames": self.num_frames,
        }

    def _load(self, state: Mapping[str, Any]) -> None:
        self.tp = np.asarray(state["tp"], dtype=np.int64).copy()
        self.fp = np.asarray(state["fp"], dtype=np.int64).copy()
        self.fn = np.asarray(state["fn"], dtype=np.int64).copy()
        self.iou_sum = np.asarray(state["iou_sum"], dtype=np.float64).copy()
        self.num_frames = int(state["num_frames"])
