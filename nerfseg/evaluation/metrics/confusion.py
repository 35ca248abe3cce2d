"""Semantic mIoU from one confusion matrix per scene (SPEC 5), and the binary foreground metric.

Why per scene: Panoptic Lifting, Semantic-NeRF and Instance-NeRF all pool the pixels of a scene's test
views into one matrix and then average over scenes (ref anchors 2.2, 6.1); averaging per-image mIoU gives
other, usually lower, numbers. Void GT pixels are removed *before* counting (so they leave both the row
and the column, torchmetrics #312); a predicted void pixel on valid GT is a miss: it lands in an extra
"void" column, which adds to its GT class's union and to no class's intersection.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nerfseg.evaluation.metrics.base import Accumulator, fnum, nanmean, safe_div
from nerfseg.evaluation.metrics.frame import FIRST_SEGMENT, VOID_LABEL, FrameStats
from nerfseg.evaluation.types import VOID
from nerfseg.errors import InputError


def confusion_from_maps(
    gt_semantic: np.ndarray, pred_semantic: np.ndarray, num_classes: int, valid: np.ndarray | None = None
) -> np.ndarray:
    """(C, C+1) int64 confusion matrix of two class maps; GT ``VOID`` (and ``~valid``) pixels are dropped,
    predicted ``VOID`` goes to column C. Any other value outside 0..C-1 is an error, not a silent drop."""
    gt = np.asarray(gt_semantic)
    pred = np.asarray(pred_semantic)
    if gt.shape != pred.shape:
        raise InputError(None, f"semantic maps differ in shape: GT {gt.shape}, prediction {pred.shape}")
    c = num_classes
    g = gt.reshape(-1).astype(np.intp)
    p = pred.reshape(-1).astype(np.intp)
    keep = g != VOID
    if valid is not None:
        keep &= np.asarray(valid, dtype=bool).reshape(-1)
    g = g[keep]
    p = p[keep]
    bad_g = (g < 0) | (g >= c)
    if bad_g.any():
        raise InputError(None, f"GT semantic values {np.unique(g[bad_g])[:10].tolist()} are outside 0..{c - 1} and not VOID ({VOID})")
    p = np.where(p == VOID, c, p)
    bad_p = (p < 0) | (p > c)
    if bad_p.any():
        raise InputError(
            None, f"predicted semantic values {np.unique(p[bad_p])[:10].tolist()} are outside 0..{c - 1} and not VOID ({VOID})"
        )
    return np.bincount(g * (c + 1) + p, minlength=c * (c + 1)).reshape(c, c + 1).astype(np.int64)


def confusion_from_stats(stats: FrameStats, num_classes: int, gt_void_as: int | None = None, pred_void_as: int | None = None) -> np.ndarray:
    """(C, C+1) confusion matrix of a frame from its joint segment histogram (no second pixel pass).

    GT void (and ids without a segment) is dropped unless ``gt_void_as`` names a class to count it as;
    predicted void goes to the void column unless ``pred_void_as`` names a class (the ``instance-nerf``
    protocol has no void: everything that is not an object is background).
    """
    c = num_classes
    m = stats.matrix
    gt_cls = np.full(m.shape[0], -1, dtype=np.intp)
    gt_cat = stats.gt_cat
    gt_cls[FIRST_SEGMENT:] = np.where((gt_cat >= 0) & (gt_cat < c), gt_cat, -1)
    if gt_void_as is not None:
        gt_cls[VOID_LABEL] = gt_void_as
        gt_cls[0] = gt_void_as
        gt_cls[FIRST_SEGMENT:][gt_cls[FIRST_SEGMENT:] < 0] = gt_void_as
    pred_cls = np.full(m.shape[1], c if pred_void_as is None else pred_void_as, dtype=np.intp)
    pred_cat = stats.pred_cat
    bad = (pred_cat < 0) | (pred_cat >= c)
    if bad.any():
        raise InputError(None, f"prediction uses unknown category ids {sorted(set(pred_cat[bad].tolist()))[:10]}")
    pred_cls[FIRST_SEGMENT:] = pred_cat
    rows = np.flatnonzero(gt_cls >= 0)
    idx = gt_cls[rows][:, None] * (c + 1) + pred_cls[None, :]
    cm = np.bincount(idx.reshape(-1), weights=m[rows].reshape(-1).astype(np.float64), minlength=c * (c + 1))
    return np.rint(cm).astype(np.int64).reshape(c, c + 1)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU of each class from a (C, C+1) matrix: diag / (GT row incl. void column + pred column - diag);
    NaN where the union is 0 (the class is absent on both sides: skipped, never 0)."""
    c = cm.shape[0]
    diag = np.diag(cm[:, :c]).astype(np.float64)
    union = cm.sum(axis=1) + cm[:, :c].sum(axis=0) - diag
    return safe_div(diag, union)


class ConfusionMIoU(Accumulator):
    """Per-scene confusion matrices -> per-scene mIoU (nanmean), their mean, dataset-level mIoU, per class."""

    def __init__(self, num_classes: int = 11):
        self.num_classes = int(num_classes)
        c = self.num_classes
        self.matrices: dict[str, np.ndarray]  # scene -> (C, C+1) confusion counts
        self.add_state("matrices", dict, "dict_sum", item=lambda: np.zeros((c, c + 1), dtype=np.int64))

    def _config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes}

    def _matrix(self, scene_id: str) -> np.ndarray:
        m = self.matrices.get(scene_id)
        if m is None:
            m = self.matrices[scene_id] = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)
        return m

    def update(self, scene_id: str, gt_semantic: np.ndarray, pred_semantic: np.ndarray, valid: np.ndarray | None = None) -> None:
        self._matrix(str(scene_id))[...] += confusion_from_maps(gt_semantic, pred_semantic, self.num_classes, valid)

    def update_matrix(self, scene_id: str, cm: np.ndarray) -> None:
        """Add a (C, C+1) confusion matrix computed elsewhere (e.g. by :func:`confusion_from_stats`)."""
        self._matrix(str(scene_id))[...] += cm

    def total(self) -> np.ndarray:
        out = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)
        for m in self.matrices.values():
            out += m
        return out

    def compute(self) -> dict[str, Any]:
        per_scene: dict[str, Any] = {}
        scene_ious = []
        for sid in sorted(self.matrices):
            iou = iou_per_class(self.matrices[sid])
            scene_ious.append(iou)
            per_scene[sid] = {"miou": nanmean(iou), "per_class_iou": [fnum(v) for v in iou]}
        dataset_iou = iou_per_class(self.total())
        if scene_ious:
            stack = np.stack(scene_ious)
            defined = ~np.isnan(stack)
            counts = defined.sum(axis=0)
            sums = np.where(defined, stack, 0.0).sum(axis=0)
            scene_mean = safe_div(sums, counts)
        else:
            scene_mean = np.full(self.num_classes, np.nan)
        return {
            "miou": nanmean(v["miou"] for v in per_scene.values()),
            "miou_dataset": nanmean(dataset_iou),
            "per_class_iou": [fnum(v) for v in dataset_iou],
            "per_class_iou_scene_mean": [fnum(v) for v in scene_mean],
            "per_scene": per_scene,
            "num_scenes": len(per_scene),
        }



def binary_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Collapse a (C, C+1) matrix to 2x2 [GT bg, fg] x [pred bg, fg]; predicted void counts as background."""
    c = cm.shape[0]
    out = np.zeros((2, 2), dtype=np.int64)
    bg_cols = np.r_[0, c]  # class 0 and the void column
    out[0, 0] = cm[0, bg_cols].sum()
    out[0, 1] = cm[0, 1:c].sum()
    out[1, 0] = cm[1:, bg_cols].sum()
    out[1, 1] = cm[1:, 1:c].sum()
    return out


def _binary_scores(m: np.ndarray) -> dict[str, float | None]:
    total = m.sum()
    acc = float(np.trace(m) / total) if total else None
    ious = [safe_div(m[k, k], m[k, :].sum() + m[:, k].sum() - m[k, k]).item() for k in (0, 1)]
    return {"acc": acc, "miou": nanmean(ious), "iou_background": fnum(ious[0]), "iou_foreground": fnum(ious[1])}


class BinaryForeground(Accumulator):
    """Foreground (any object class 1..C-1) vs background (class 0): pixel accuracy and 2-class mIoU.

    The paper's Table 3 metric; no reference code exists (ref anchors_instance_nerf 7), so this is our
    definition: GT void ignored, predicted void = background, pixels pooled over all test views (dataset
    numbers) or over one scene's views (per-scene numbers).
    """

    def __init__(self, num_classes: int = 11):
        self.num_classes = int(num_classes)
        self.matrices: dict[str, np.ndarray]  # scene -> 2x2 [GT bg, fg] x [pred bg, fg] counts
        self.add_state("matrices", dict, "dict_sum", item=lambda: np.zeros((2, 2), dtype=np.int64))

    def _config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes}

    def update(self, scene_id: str, gt_semantic: np.ndarray, pred_semantic: np.ndarray, valid: np.ndarray | None = None) -> None:
        self.update_confusion(scene_id, confusion_from_maps(gt_semantic, pred_semantic, self.num_classes, valid))

    def update_confusion(self, scene_id: str, cm: np.ndarray) -> None:
        sid = str(scene_id)
        m = self.matrices.setdefault(sid, np.zeros((2, 2), dtype=np.int64))
        m += binary_from_confusion(cm)

    def compute(self) -> dict[str, Any]:
        total = np.zeros((2, 2), dtype=np.int64)
        per_scene = {}
        for sid in sorted(self.matrices):
            total += self.matrices[sid]
            per_scene[sid] = _binary_scores(self.matrices[sid])
        out: dict[str, Any] = dict(_binary_scores(total))
        out["per_scene"] = per_scene
        return out
