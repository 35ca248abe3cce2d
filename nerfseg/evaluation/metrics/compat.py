"""Metrics of other people's evaluation scripts, quirks included, for comparing with published numbers.

* :class:`InstanceNerfPQ`: ``PQ_image`` of Instance-NeRF's ``eval.py`` (torch-ngp, branch instance_nerf;
  ref anchors_instance_nerf 7). Things only, plain IoU (no void discount), each prediction takes its best
  GT and is a TP if IoU > 0.5 and the classes agree, a FP if IoU > 0.5 and they differ, and *nothing* if
  IoU <= 0.5; FN = GT instances of the whole scene (visible or not) whose best IoU is < 0.5. TP/FP/FN and
  the IoU sum are pooled over all frames of all scenes into one PQ (no per-class mean).
* :class:`PanopticLiftingScene`: ``calculate_panoptic_quality_folders`` + ``calculate_iou_folders`` of
  Panoptic Lifting / Contrastive Lift (ref anchors 2.1-2.2): every map resized to 512x512 (PIL nearest),
  GT class-0 pixels deleted, the test views of a scene concatenated; PQ uses (category, instance) segments
  (stuff instance 0), drops classes absent from both sides or under 0.5% of the pixels of prediction OR GT
  (their pixels become void on both sides), subtracts void on both sides from the union, ignores GT
  segments mostly on predicted void and predictions mostly on GT void, and averages PQ/SQ/RQ over *all*
  remaining classes (a class with nothing to count scores 0). mIoU: one confusion matrix per scene,
  predicted values outside the classes (our void) masked out, classes under 0.5% on BOTH sides -> NaN,
  nanmean. Dataset numbers are means over scenes. (PL's script prints SQ and RQ swapped; we do not.)
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from nerfseg.evaluation.metrics.base import Accumulator, fnum, nanmean, safe_div
from nerfseg.evaluation.metrics.frame import FIRST_SEGMENT, VOID_LABEL, FrameStats
from nerfseg.evaluation.metrics.scene_panoptic import SparseSum
from nerfseg.errors import InputError

# ---------------------------------------------------------------------------------------------
# Instance-NeRF


class InstanceNerfPQ(Accumulator):
    """Instance-NeRF's pooled PQ over things (see module docstring), with per-scene totals."""

    def __init__(self, thing_categories: list[int] | tuple[int, ...] = tuple(range(1, 11))):
        self.thing_categories = tuple(sorted(int(c) for c in thing_categories))
        self.totals: dict[str, np.ndarray]  # scene -> [iou_sum, tp, fp, fn, frames]
        self.add_state("totals", dict, "dict_sum", item=lambda: np.zeros(5, dtype=np.float64))

    def _config(self) -> dict[str, Any]:
        return {"thing_categories": list(self.thing_categories)}

    def update_stats(self, scene_id: str, stats: FrameStats, scene_instances: set[int] | frozenset[int] = frozenset()) -> None:
        things = np.asarray(self.thing_categories, dtype=np.int64)
        g_rows = np.flatnonzero(np.isin(stats.gt_cat, things))
        p_cols = np.flatnonzero(np.isin(stats.pred_cat, things))
        m = stats.matrix
        inter = m[FIRST_SEGMENT + g_rows][:, FIRST_SEGMENT + p_cols].astype(np.float64)  # (G, P)
        g_area = m[FIRST_SEGMENT + g_rows, :].sum(axis=1).astype(np.float64)  # pixels, not JSON areas
        p_area = m[:, FIRST_SEGMENT + p_cols].sum(axis=0).astype(np.float64)
        union = g_area[:, None] + p_area[None, :] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        tp = fp = 0
        iou_sum = 0.0
        if g_rows.size and p_cols.size:
            best = iou.argmax(axis=0)  # first maximum: GT in ascending id order, as eval.py's 1..G
            best_iou = iou[best, np.arange(p_cols.size)]
            hit = best_iou > 0.5
            same = stats.pred_cat[p_cols] == stats.gt_cat[g_rows][best]
            tp = int((hit & same).sum())
            fp = int((hit & ~same).sum())
            iou_sum = float(best_iou[hit & same].sum())
            gt_best = iou.max(axis=1)
        else:
            gt_best = np.zeros(g_rows.size)
        visible = set(stats.gt_ids[g_rows].tolist())
        invisible = len({int(i) for i in scene_instances} - visible)
        fn = int((gt_best < 0.5).sum()) + invisible
        t = self.totals.setdefault(str(scene_id), np.zeros(5))
        t += (iou_sum, tp, fp, fn, 1)

    @staticmethod
    def _scores(t: np.ndarray) -> dict[str, Any]:
        iou_sum, tp, fp, fn, frames = t
        den = tp + 0.5 * fp + 0.5 * fn
        return {
            "pq": float(iou_sum / den) if den else None,
            "sq": float(iou_sum / tp) if tp else None,
            "rq": float(tp / den) if den else None,
            "tp": int(tp),
            "fp": int(fp),
            "fn": int(fn),
            "iou_sum": float(iou_sum),
            "num_frames": int(frames),
        }

    def compute(self) -> dict[str, Any]:
        total = np.zeros(5)
        per_scene = {}
        for sid in sorted(self.totals):
            total += self.totals[sid]
            per_scene[sid] = self._scores(self.totals[sid])
        out = self._scores(total)
        out["per_scene"] = per_scene
        return out


# ---------------------------------------------------------------------------------------------
# Panoptic Lifting / Contrastive Lift

PL_SIZE = (512, 512)  # (width, height), PL's image_dim
PL_ROBUST = 0.005
_VOID_CAT = 255  # category of predicted void (outside every class, so PL turns it into its void colour)


@lru_cache(maxsize=64)
def _nearest_index(size_in: int, size_out: int) -> np.ndarray:
    """Source index of each output column under PIL's NEAREST resize, read from PIL itself (exact)."""
    ramp = Image.fromarray(np.arange(size_in, dtype=np.int32).reshape(1, size_in), mode="I")
    return np.asarray(ramp.resize((size_out, 1), Image.NEAREST)).reshape(-1).astype(np.intp)


def resize_nearest(array: np.ndarray, size: tuple[int, int] = PL_SIZE) -> np.ndarray:
    """Resize an (H, W) label map to ``size`` = (width, height) exactly as ``PIL.Image.resize(NEAREST)``."""
    h, w = array.shape[:2]
    out_w, out_h = size
    if (w, h) == (out_w, out_h):
        return array
    return array[_nearest_index(h, out_h)[:, None], _nearest_index(w, out_w)[None, :]]


def _pl_key(cat: np.ndarray, inst: np.ndarray) -> np.ndarray:
    return (cat.astype(np.uint64) << np.uint64(24)) | inst.astype(np.uint64)


class PanopticLiftingScene(Accumulator):
    """Panoptic Lifting's scene PQ and mIoU (see module docstring); feed it frames resized to 512x512."""

    def __init__(self, categories: Mapping[int, bool] | list[list[int]], robust: float = PL_ROBUST):
        if isinstance(categories, list):
            categories = {int(k): bool(v) for k, v in categories}
        self.categories = {int(k): bool(v) for k, v in sorted(categories.items())}
        if any(k < 0 or k >= _VOID_CAT for k in self.categories):
            raise ValueError(f"category ids must lie in [0, {_VOID_CAT})")
        self.robust = float(robust)
        self.scenes: dict[str, SparseSum]  # scene -> (GT key << 32 | pred key) -> pixels
        self.frames: dict[str, int]  # scene -> frames seen
        self.add_state(
            "scenes",
            dict,
            _merge_sparse,
            dump=lambda v: {k: t.state() for k, t in v.items()},
            load=lambda v: {str(k): SparseSum.from_state(t, True) for k, t in v.items()},
        )
        self.add_state("frames", dict, "dict_sum", item=int)

    def _config(self) -> dict[str, Any]:
        return {"categories": [[k, int(v)] for k, v in self.categories.items()], "robust": self.robust}

    def update_stats(self, scene_id: str, stats: FrameStats) -> None:
        """Add a frame (already resized). Pixels on GT void, unlisted GT ids and GT class 0 are dropped."""
        cats = np.array(sorted(self.categories), dtype=np.int64)
        isthing = np.array([self.categories[c] for c in cats.tolist()], dtype=bool)
        valid = np.flatnonzero(np.isin(stats.gt_cat, cats) & (stats.gt_cat != 0))
        g_cat = stats.gt_cat[valid]
        g_thing = isthing[np.searchsorted(cats, g_cat)]
        g_inst = np.where(g_thing, stats.gt_ids[valid], 0)
        if g_inst.size and g_inst.max() >= 1 << 24:
            raise InputError(None, "instance ids must be below 2^24")
        g_key = _pl_key(g_cat, g_inst)
        p_cat = stats.pred_cat
        known = np.isin(p_cat, cats)
        p_thing = np.zeros(p_cat.size, dtype=bool)
        p_thing[known] = isthing[np.searchsorted(cats, p_cat[known])]
        # categories outside the classes become PL's void colour: (void category, instance 0)
        p_cat_eff = np.where(known, p_cat, _VOID_CAT)
        p_inst = np.where(p_thing, stats.pred_ids, 0)
        p_key = np.concatenate((_pl_key(np.array([_VOID_CAT]), np.array([0])), _pl_key(p_cat_eff, p_inst)))
        cols = np.concatenate(([VOID_LABEL], FIRST_SEGMENT + np.arange(stats.pred_ids.size)))
        sub = stats.matrix[FIRST_SEGMENT + valid][:, cols]
        r, c = np.nonzero(sub)
        keys = (g_key[r] << np.uint64(32)) | p_key[c]
        sid = str(scene_id)
        self.scenes.setdefault(sid, SparseSum(integer=True)).add(keys, sub[r, c])
        self.frames[sid] = self.frames.get(sid, 0) + 1

    # -- per-scene computations -----------------------------------------------------------------
    def _pairs(self, sid: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        st = self.scenes[sid].state()
        return st["keys"] >> np.uint64(32), st["keys"] & np.uint64(0xFFFFFFFF), st["values"].astype(np.int64)

    def scene_pq(self, sid: str) -> dict[str, Any]:
        g, p, cnt = self._pairs(sid)
        g_cat = (g >> np.uint64(24)).astype(np.int64)
        p_cat = (p >> np.uint64(24)).astype(np.int64)
        classes = np.array(sorted(self.categories), dtype=np.int64)
        gt_count = np.bincount(g_cat, weights=cnt, minlength=256)
        pred_count = np.bincount(p_cat, weights=cnt, minlength=256)
        total = cnt.sum()
        present = (gt_count > 0) | (pred_count > 0)
        non_robust = ((gt_count > 0) & (gt_count / max(total, 1) < self.robust)) | (
            (pred_count > 0) & (pred_count / max(total, 1) < self.robust)
        )
        kept = np.zeros(256, dtype=bool)
        kept[classes] = present[classes] & ~non_robust[classes]
        things = [c for c in classes.tolist() if kept[c] and self.categories[c]]
        stuff = [c for c in classes.tolist() if kept[c] and not self.categories[c]]
        order = things + stuff  # PL's continuous ids: things first, then stuff
        if not order:
            return {"pq": None, "sq": None, "rq": None, "classes": [], "per_class": {}}

        void = np.uint64(0xFFFFFFFF)
        g2 = np.where(kept[g_cat], g, void)
        p2 = np.where(kept[p_cat], p, void)
        # re-sum after the filter merged the dropped classes into void
        uk, inv = np.unique((g2 << np.uint64(32)) | p2, return_inverse=True)
        inter = np.rint(np.bincount(inv.reshape(-1), weights=cnt, minlength=uk.size)).astype(np.int64)
        gk, pk = uk >> np.uint64(32), uk & np.uint64(0xFFFFFFFF)
        g_keys, g_idx = np.unique(gk, return_inverse=True)
        p_keys, p_idx = np.unique(pk, return_inverse=True)
        g_area = np.bincount(g_idx.reshape(-1), weights=inter, minlength=g_keys.size)
        p_area = np.bincount(p_idx.reshape(-1), weights=inter, minlength=p_keys.size)
        g_void = g_keys == void
        p_void = p_keys == void
        # pixels of each GT segment on predicted void, of each prediction on GT void
        on_pv = p_void[p_idx]
        on_gv = g_void[g_idx]
        gt_on_void = np.bincount(g_idx[on_pv], weights=inter[on_pv], minlength=g_keys.size)
        pred_on_void = np.bincount(p_idx[on_gv], weights=inter[on_gv], minlength=p_keys.size)

        g_cls = (g_keys >> np.uint64(24)).astype(np.int64)
        p_cls = (p_keys >> np.uint64(24)).astype(np.int64)
        cand = ~on_pv & ~on_gv & (g_cls[g_idx] == p_cls[p_idx])
        union = p_area[p_idx] - pred_on_void[p_idx] + g_area[g_idx] - gt_on_void[g_idx] - inter
        iou = np.zeros(inter.size)
        np.divide(inter, union, out=iou, where=cand & (union > 0))
        match = cand & (iou > 0.5)
        cont = np.full(256, -1, dtype=np.int64)
        cont[order] = np.arange(len(order))
        n = len(order)
        tp = np.bincount(cont[g_cls[g_idx[match]]], minlength=n)
        iou_sum = np.bincount(cont[g_cls[g_idx[match]]], weights=iou[match], minlength=n)
        g_matched = np.zeros(g_keys.size, dtype=bool)
        g_matched[g_idx[match]] = True
        p_matched = np.zeros(p_keys.size, dtype=bool)
        p_matched[p_idx[match]] = True
        fn_mask = ~g_void & ~g_matched & ~(safe_div(gt_on_void, g_area) > 0.5)
        fp_mask = ~p_void & ~p_matched & ~(safe_div(pred_on_void, p_area) > 0.5)
        fn = np.bincount(cont[g_cls[fn_mask]], minlength=n)
        fp = np.bincount(cont[p_cls[fp_mask]], minlength=n)
        den = tp + 0.5 * fp + 0.5 * fn
        pq = np.where(den > 0, safe_div(iou_sum, den), 0.0)
        sq = np.where(tp > 0, safe_div(iou_sum, tp), 0.0)
        rq = np.where(den > 0, safe_div(tp, den), 0.0)
        per_class = {
            int(c): {
                "pq": float(pq[i]),
                "sq": float(sq[i]),
                "rq": float(rq[i]),
                "tp": int(tp[i]),
                "fp": int(fp[i]),
                "fn": int(fn[i]),
                "iou_sum": float(iou_sum[i]),
            }
            for i, c in enumerate(order)
        }
        return {"pq": float(pq.mean()), "sq": float(sq.mean()), "rq": float(rq.mean()), "classes": order, "per_class": per_class}

    def scene_confusion(self, sid: str) -> np.ndarray:
        """(C, C) matrix [GT class, predicted class] of the kept pixels; predicted void is masked out."""
        g, p, cnt = self._pairs(sid)
        g_cat = (g >> np.uint64(24)).astype(np.int64)
        p_cat = (p >> np.uint64(24)).astype(np.int64)
        c = max(self.categories) + 1
        ok = p_cat < c
        return np.rint(np.bincount(g_cat[ok] * c + p_cat[ok], weights=cnt[ok], minlength=c * c)).astype(np.int64).reshape(c, c)

    def scene_miou(self, sid: str) -> tuple[float | None, np.ndarray]:
        cm = self.scene_confusion(sid)
        diag = np.diag(cm).astype(np.float64)
        rows, cols = cm.sum(axis=1), cm.sum(axis=0)
        iou = safe_div(diag, rows + cols - diag)
        total = cm.sum()
        if total:
            non_robust = (rows / total < self.robust) & (cols / total < self.robust)
            iou[non_robust] = np.nan
        return nanmean(iou), iou

    def compute(self) -> dict[str, Any]:
        per_scene = {}
        ious = []
        for sid in sorted(self.scenes):
            pq = self.scene_pq(sid)
            miou, iou = self.scene_miou(sid)
            ious.append(iou)
            per_scene[sid] = {
                "pq": pq["pq"],
                "sq": pq["sq"],
                "rq": pq["rq"],
                "miou": miou,
                "classes": pq["classes"],
                "per_class": pq["per_class"],
                "per_class_iou": [fnum(v) for v in iou],
                "num_frames": self.frames.get(sid, 0),
            }
        if ious:
            stack = np.stack(ious)
            defined = ~np.isnan(stack)
            class_mean = safe_div(np.where(defined, stack, 0).sum(axis=0), defined.sum(axis=0))
        else:
            class_mean = np.full(max(self.categories) + 1, np.nan)
        return {
            "pq": nanmean(s["pq"] for s in per_scene.values()),
            "sq": nanmean(s["sq"] for s in per_scene.values()),
            "rq": nanmean(s["rq"] for s in per_scene.values()),
            "miou": nanmean(s["miou"] for s in per_scene.values()),
            "per_class_iou_scene_mean": [fnum(v) for v in class_mean],
            "per_scene": per_scene,
            "num_scenes": len(per_scene),
        }


def _merge_sparse(mine: dict[str, SparseSum], theirs: dict[str, SparseSum]) -> dict[str, SparseSum]:
    """Per-scene sparse pixel sums, added key by key (``theirs`` is compacted, never aliased)."""
    for sid, s in theirs.items():
        mine.setdefault(sid, SparseSum(integer=True)).merge(s)
    return mine
