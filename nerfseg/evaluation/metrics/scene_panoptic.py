"""PQ^scene (Panoptic Lifting, SPEC 5): PQ with all test views of a scene joined into one image.

A predicted thing is the set of its pixels in *every* view, so it matches a GT object only if the method
used the same id for it in all views: this is the one metric that sees multi-view consistency. Stuff is one
segment per category and scene on both sides (Panoptic Lifting zeroes stuff instance ids); GT crowd regions
of a category are merged into the one crowd region panopticapi honours per category.

No image is stored: per scene we keep sparse sums of the (GT segment, predicted segment) pixel counts (GT
void included), the GT areas and the predicted areas, keyed by packed ``(category, id)`` integers. At the
end each scene goes through the same matching kernel as per-frame PQ (:func:`pq_match`), so the result
equals running :class:`PanopticQuality` on the concatenated frames (tests check this).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nerfseg.evaluation.metrics.base import Accumulator, merge_by_key, nanmean
from nerfseg.evaluation.metrics.frame import FIRST_SEGMENT, VOID_LABEL, FrameStats, frame_stats
from nerfseg.evaluation.metrics.panoptic import CategoryTable, Segments, SparsePairs, pq_match, pq_summary
from nerfseg.errors import InputError

_ID_SPAN = 1 << 24  # COCO panoptic ids are < 2^24
_GT_SPAN = _ID_SPAN + 1  # GT part: id (things), 0 (stuff), 2^24 (the merged crowd region)
_CROWD_PART = _ID_SPAN
_MAX_CATEGORIES = 255  # keeps packed GT and prediction keys below 2^32, so a pair packs into one uint64


class SparseSum:
    """A growing multiset of (uint64 key, value) sums, compacted with ``np.unique`` now and then.

    Memory is O(distinct keys), never O(pixels or frames): pending chunks are folded in once they outgrow
    the compacted table.
    """

    def __init__(self, integer: bool = True):
        self.integer = integer
        self.keys = np.zeros(0, dtype=np.uint64)
        self.values = np.zeros(0, dtype=np.int64 if integer else np.float64)
        self._pending_keys: list[np.ndarray] = []
        self._pending_values: list[np.ndarray] = []
        self._pending = 0

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        if keys.size == 0:
            return
        self._pending_keys.append(np.asarray(keys, dtype=np.uint64))
        self._pending_values.append(np.asarray(values))
        self._pending += keys.size
        if self._pending > 4096 + 2 * self.keys.size:
            self.compact()

    def compact(self) -> None:
        if not self._pending_keys:
            return
        keys = np.concatenate([self.keys] + self._pending_keys)
        values = np.concatenate([self.values.astype(np.float64)] + [v.astype(np.float64) for v in self._pending_values])
        uniq, inv = np.unique(keys, return_inverse=True)
        sums = np.bincount(inv.reshape(-1), weights=values, minlength=uniq.size)
        self.keys = uniq
        self.values = np.rint(sums).astype(np.int64) if self.integer else sums
        self._pending_keys, self._pending_values, self._pending = [], [], 0

    def merge(self, other: SparseSum) -> None:
        other.compact()
        self.add(other.keys, other.values)
        self.compact()

    def state(self) -> dict[str, np.ndarray]:
        self.compact()
        return {"keys": self.keys.copy(), "values": self.values.copy()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], integer: bool = True) -> SparseSum:
        obj = cls(integer)
        obj.keys = np.asarray(state["keys"], dtype=np.uint64).copy()
        obj.values = np.asarray(state["values"], dtype=np.int64 if integer else np.float64).copy()
        return obj


class _SceneTables:
    """The three sparse sums of one scene."""

    def __init__(self) -> None:
        self.pairs = SparseSum(integer=True)  # (gt key << 32 | pred key) -> pixels; gt key 0 = GT void
        self.gt_area = SparseSum(integer=False)  # gt key -> area (JSON area or pixels, summed over views)
        self.pred_area = SparseSum(integer=True)  # pred key -> pixels
        self.num_frames = 0

    def state(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs.state(),
            "gt_area": self.gt_area.state(),
            "pred_area": self.pred_area.state(),
            "num_frames": self.num_frames,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> _SceneTables:
        obj = cls()
        obj.pairs = SparseSum.from_state(state["pairs"], True)
        obj.gt_area = SparseSum.from_state(state["gt_area"], False)
        obj.pred_area = SparseSum.from_state(state["pred_area"], True)
        obj.num_frames = int(state["num_frames"])
        return obj

    def merge(self, other: _SceneTables) -> None:
        self.pairs.merge(other.pairs)
        self.gt_area.merge(other.gt_area)
        self.pred_area.merge(other.pred_area)
        self.num_frames += other.num_frames


class ScenePanopticQuality(Accumulator):
    """PQ^scene: per scene PQ over the joined test views (All/Things/Stuff), then the mean over scenes."""

    def __init__(self, categories: Mapping[int, bool] | list[list[int]]):
        if isinstance(categories, list):
            categories = {int(k): bool(v) for k, v in categories}
        self.cats = CategoryTable(categories)
        if len(self.cats) > _MAX_CATEGORIES:
            raise ValueError(f"ScenePanopticQuality supports at most {_MAX_CATEGORIES} categories")
        self.scenes: dict[str, _SceneTables]
        self.add_state(
            "scenes",
            dict,
            _merge_tables,
            dump=lambda v: {sid: t.state() for sid, t in v.items()},
            load=lambda v: {str(sid): _SceneTables.from_state(s) for sid, s in v.items()},
        )

    def _config(self) -> dict[str, Any]:
        return {"categories": self.cats.as_config()}

    def update(self, scene_id: str, gt_ids: np.ndarray, gt_segments: Segments, pred_ids: np.ndarray, pred_segments: Segments, source: str | Path | None = None) -> None:
        """Add one view of scene ``scene_id`` from its id maps and segment tables (see :meth:`update_stats`)."""
        self.update_stats(scene_id, frame_stats(gt_ids, gt_segments, pred_ids, pred_segments, source), source)

    def check_stats(self, stats: FrameStats, source: str | Path | None = None) -> None:
        """Raise what :meth:`update_stats` would refuse, recording nothing (a protocol checks every metric
        before any of them records the frame)."""
        where = None if source is None else Path(source)
        pred_cat = self.cats.index(stats.pred_cat)
        if (pred_cat < 0).any():
            raise InputError(where, f"prediction uses unknown category ids {sorted(set(stats.pred_cat[pred_cat < 0].tolist()))[:10]}")
        if stats.gt_ids.size and stats.gt_ids.max() >= _ID_SPAN or stats.pred_ids.size and stats.pred_ids.max() >= _ID_SPAN:
            raise InputError(where, "segment ids must be below 2^24 (COCO panoptic PNG ids)")

    def update_stats(self, scene_id: str, stats: FrameStats, source: str | Path | None = None) -> None:
        self.check_stats(stats, source)
        cats = self.cats
        gt_cat = cats.index(stats.gt_cat)
        pred_cat = cats.index(stats.pred_cat)
        known = np.flatnonzero(gt_cat >= 0)
        gc = gt_cat[known]
        g_thing = cats.isthing[gc]
        g_part = np.where(stats.gt_crowd[known], _CROWD_PART, np.where(g_thing, stats.gt_ids[known], 0))
        g_key = (1 + gc.astype(np.uint64) * _GT_SPAN + g_part.astype(np.uint64)).astype(np.uint64)
        p_part = np.where(cats.isthing[pred_cat], stats.pred_ids, 0)
        p_key = (pred_cat.astype(np.uint64) * _ID_SPAN + p_part.astype(np.uint64)).astype(np.uint64)

        m = stats.matrix
        rows = np.concatenate(([VOID_LABEL], FIRST_SEGMENT + known))
        row_keys = np.concatenate((np.zeros(1, dtype=np.uint64), g_key))
        sub = m[rows][:, FIRST_SEGMENT:]
        r, c = np.nonzero(sub)
        pair_keys = (row_keys[r] << np.uint64(32)) | p_key[c]

        tables = self.scenes.get(str(scene_id))
        if tables is None:
            tables = self.scenes[str(scene_id)] = _SceneTables()
        tables.pairs.add(pair_keys, sub[r, c])
        tables.gt_area.add(g_key, stats.gt_area[known].astype(np.float64))
        tables.pred_area.add(p_key, m[:, FIRST_SEGMENT:].sum(axis=0))
        tables.num_frames += 1

    def scene_counts(self, scene_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-category (tp, fp, fn, iou_sum) of one joined scene."""
        t = self.scenes[scene_id]
        pairs, gt_area, pred_area = t.pairs.state(), t.gt_area.state(), t.pred_area.state()
        gkeys, gvals = gt_area["keys"], gt_area["values"]
        pkeys, pvals = pred_area["keys"], pred_area["values"]
        g_of_pair = pairs["keys"] >> np.uint64(32)
        p_of_pair = pairs["keys"] & np.uint64(0xFFFFFFFF)
        counts = pairs["values"]

        g_cat = ((gkeys - np.uint64(1)) // np.uint64(_GT_SPAN)).astype(np.int64)
        g_part = ((gkeys - np.uint64(1)) % np.uint64(_GT_SPAN)).astype(np.int64)
        g_crowd = g_part == _CROWD_PART
        p_cat = (pkeys // np.uint64(_ID_SPAN)).astype(np.int64)

        p_idx = np.searchsorted(pkeys, p_of_pair)
        on_void = g_of_pair == 0
        pred_void = np.bincount(p_idx[on_void], weights=counts[on_void], minlength=pkeys.size)
        seg = ~on_void
        g_idx = np.searchsorted(gkeys, g_of_pair[seg])
        c = len(self.cats)
        crowd_row = np.full(c, -1, dtype=np.int64)
        crowd_row[g_cat[g_crowd]] = np.flatnonzero(g_crowd)
        pairs = SparsePairs(
            g=g_idx,
            p=p_idx[seg],
            inter=counts[seg].astype(np.int64),
            gt_cat=g_cat,
            gt_crowd=g_crowd,
            gt_area=gvals.astype(np.float64),
            pred_cat=p_cat,
            pred_area=pvals.astype(np.int64),
            pred_void=pred_void,
            crowd_row=crowd_row,
        )
        return pq_match(pairs, c)

    def compute(self) -> dict[str, Any]:
        per_scene: dict[str, Any] = {}
        for sid in sorted(self.scenes):
            summary = pq_summary(*self.scene_counts(sid), self.cats)
            summary["num_frames"] = self.scenes[sid].num_frames
            per_scene[sid] = summary
        out: dict[str, Any] = {"per_scene": per_scene, "num_scenes": len(per_scene)}
        for split in ("all", "things", "stuff"):
            out[split] = {k: nanmean(s[split][k] for s in per_scene.values()) for k in ("pq", "sq", "rq")}
            out[split]["n"] = sum(1 for s in per_scene.values() if s[split]["pq"] is not None)  # scenes averaged
        return out


def _merge_tables(mine: dict[str, _SceneTables], theirs: dict[str, _SceneTables]) -> dict[str, _SceneTables]:
    """Per-scene tables added key by key; a scene only in ``theirs`` is copied, never aliased."""
    return merge_by_key(mine, theirs, lambda t: _SceneTables.from_state(t.state()))
