"""3D metrics (SPEC 5): voxel mIoU over the 11 classes and 3D instance-mask AP at IoU 0.25 / 0.5.

AP follows NeRF-RCNN's ``evaluate_map_recall`` (Instance-NeRF ``nerf_rcnn/eval.py``, a chainer-cv / VOC
port): per scene and class, predictions in descending score order each take the GT of their class with the
highest voxel IoU; IoU >= threshold and that GT not yet taken -> TP, otherwise FP (a prediction whose best
GT is already taken is a FP even if a second-best GT is free, as in VOC). Over all scenes, per class:
precision/recall by descending score, VOC all-point interpolation; AP is NaN for a class without GT and
mAP is the mean over the other classes. The matching of a scene only depends on the order of its own
predictions, so it is done at ``update`` time and only (class, score, TP flags) are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nerfseg.evaluation.metrics.base import Accumulator, fnum, nanmean
from nerfseg.evaluation.metrics.confusion import ConfusionMIoU, confusion_from_maps
from nerfseg.evaluation.types import GT3D, Pred3D
from nerfseg.errors import InputError


def voc_ap(tp_in_score_order: np.ndarray, num_gt: int) -> float:
    """VOC all-point interpolated AP of detections already sorted by descending score."""
    tp_flags = np.asarray(tp_in_score_order, dtype=bool)
    tp = np.cumsum(tp_flags).astype(np.float64)
    fp = np.cumsum(~tp_flags).astype(np.float64)
    rec = tp / num_gt
    prec = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _lut(ids: np.ndarray, values: np.ndarray, size: int, default: int = 0) -> np.ndarray:
    lut = np.full(size, default, dtype=np.int64)
    lut[ids] = values
    return lut


def mask_ious(gt_instance: np.ndarray, gt_ids: np.ndarray, pred: Pred3D) -> tuple[np.ndarray, np.ndarray]:
    """(K, G) voxel IoU between K predicted masks and the G GT instances ``gt_ids``; also the (K,) pred sizes.

    From an instance grid: one joint histogram. From (K, ...) masks: one ``bincount`` of the GT labels under
    each mask (a loop over masks, not voxels).
    """
    g = gt_ids.size
    gt_flat = np.asarray(gt_instance).reshape(-1).astype(np.int64)
    if gt_flat.size and gt_flat.min() < 0:
        raise InputError(None, "GT instance grid holds negative ids")
    top = int(max(gt_flat.max(initial=0), gt_ids.max(initial=0))) + 1
    g_lab = _lut(gt_ids, np.arange(1, g + 1), top)[gt_flat]
    g_area = np.bincount(g_lab, minlength=g + 1)[1:]
    if pred.masks is not None:
        masks = np.asarray(pred.masks, dtype=bool)
        if masks.shape[1:] != np.asarray(gt_instance).shape:
            raise InputError(None, f"predicted masks have shape {masks.shape[1:]}, GT grid {np.asarray(gt_instance).shape}")
        k = masks.shape[0]
        inter = np.zeros((k, g), dtype=np.int64)
        p_area = np.zeros(k, dtype=np.int64)
        for i in range(k):
            sel = np.flatnonzero(masks[i].reshape(-1))
            p_area[i] = sel.size
            inter[i] = np.bincount(g_lab[sel], minlength=g + 1)[1:]
    elif pred.instance is not None and pred.ids is not None:
        p_grid = np.asarray(pred.instance).reshape(-1).astype(np.int64)
        if p_grid.size != gt_flat.size:
            raise InputError(
                None, f"predicted instance grid has shape {np.asarray(pred.instance).shape}, GT grid {np.asarray(gt_instance).shape}"
            )
        p_ids = np.asarray(pred.ids, dtype=np.int64)
        k = p_ids.size
        ptop = int(max(p_grid.max(initial=0), p_ids.max(initial=0))) + 1
        p_lab = _lut(p_ids, np.arange(1, k + 1), ptop)[p_grid]
        joint = np.bincount(p_lab * (g + 1) + g_lab, minlength=(k + 1) * (g + 1)).reshape(k + 1, g + 1)
        inter = joint[1:, 1:]
        p_area = joint[1:, :].sum(axis=1)
    else:
        raise InputError(None, "3D prediction needs either masks or an instance grid with ids")
    union = p_area[:, None] + g_area[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros(inter.shape, dtype=np.float64), where=union > 0)
    return iou, p_area


def _pred_semantic(shape: tuple[int, ...], pred: Pred3D, classes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Class grid of a prediction: painted in ascending score order, so the most confident claim wins."""
    if pred.semantic is not None:
        return np.asarray(pred.semantic)
    if pred.masks is not None:
        sem = np.zeros(shape, dtype=np.uint8)
        masks = np.asarray(pred.masks, dtype=bool)
        for i in np.argsort(scores, kind="stable"):
            sem[masks[i]] = classes[i]
        return sem
    p_grid = np.asarray(pred.instance).astype(np.int64)
    p_ids = np.asarray(pred.ids, dtype=np.int64)
    top = int(max(p_grid.max(initial=0), p_ids.max(initial=0))) + 1
    return _lut(p_ids, classes, top)[p_grid].astype(np.uint8)


class Voxel3D(Accumulator):
    """Voxel mIoU (per-scene confusion, mean over scenes, as the 2D mIoU) and mask AP at each IoU threshold."""

    def __init__(self, num_classes: int = 11, iou_thresholds: Sequence[float] = (0.25, 0.5)):
        self.num_classes = int(num_classes)
        self.iou_thresholds = tuple(float(t) for t in iou_thresholds)
        self.confusion: ConfusionMIoU
        self.n_pos: np.ndarray
        self.det_class: list[np.ndarray]  # one array per scene: class of each predicted instance
        self.det_score: list[np.ndarray]
        self.det_tp: list[np.ndarray]  # (K, T) booleans
        self.scenes: list[str]
        n, t = self.num_classes, len(self.iou_thresholds)
        self.add_state("confusion", lambda: ConfusionMIoU(n), "merge")
        self.add_state("n_pos", lambda: np.zeros(n, dtype=np.int64), "sum")
        self.add_state("det_class", list, "cat", item=lambda: np.zeros(0, dtype=np.int64))
        self.add_state("det_score", list, "cat", item=lambda: np.zeros(0, dtype=np.float64))
        self.add_state("det_tp", list, "cat", load=lambda v: [np.asarray(a, dtype=bool).reshape(-1, t).copy() for a in v])
        self.add_state("scenes", list, "cat_disjoint", item=str)

    def _config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "iou_thresholds": list(self.iou_thresholds)}

    def update(self, scene_id: str, gt: GT3D, pred: Pred3D) -> None:
        sid = str(scene_id)
        if sid in self.scenes:
            raise InputError(None, f"scene {sid} was already given to Voxel3D")
        c = self.num_classes
        gt_inst = np.asarray(gt.instance)
        gt_items = sorted((int(i), int(k)) for i, k in gt.classes.items() if int(i) != 0 and 0 < int(k) < c)
        gt_ids = np.array([i for i, _ in gt_items], dtype=np.int64)
        gt_cls = np.array([k for _, k in gt_items], dtype=np.int64)
        classes = np.asarray(pred.classes, dtype=np.int64).reshape(-1)
        scores = np.asarray(pred.scores, dtype=np.float64).reshape(-1)
        if classes.size != scores.size:
            raise InputError(None, f"scene {sid}: {classes.size} predicted classes but {scores.size} scores")
        if classes.size and (classes.min() < 1 or classes.max() >= c):
            raise InputError(None, f"scene {sid}: predicted 3D classes must lie in 1..{c - 1}")

        k = classes.size
        if pred.masks is not None:
            n_pred = np.shape(pred.masks)[0]
        elif pred.instance is not None and pred.ids is not None:
            n_pred = len(pred.ids)
        else:
            raise InputError(None, f"scene {sid}: 3D prediction needs either masks or an instance grid with ids")
        if n_pred != k:
            raise InputError(None, f"scene {sid}: {n_pred} predicted instances but {k} classes")

        # semantic grids -> voxel confusion (no void in 3D); committed only once everything succeeded
        if gt.semantic is not None:
            gt_sem = np.asarray(gt.semantic)
        else:
            flat = gt_inst.astype(np.int64)
            top = int(max(flat.max(initial=0), gt_ids.max(initial=0))) + 1
            gt_sem = _lut(gt_ids, gt_cls, top)[flat]
        cm = confusion_from_maps(gt_sem, _pred_semantic(gt_inst.shape, pred, classes, scores), c)

        # instance matching (NeRF-RCNN rules)
        tp = np.zeros((k, len(self.iou_thresholds)), dtype=bool)
        if k:
            iou, _ = mask_ious(gt_inst, gt_ids, pred)
            for cls in np.unique(classes):
                preds = np.flatnonzero(classes == cls)
                preds = preds[np.argsort(-scores[preds], kind="stable")]
                gts = np.flatnonzero(gt_cls == cls)
                if gts.size == 0:
                    continue
                sub = iou[np.ix_(preds, gts)]
                best = sub.argmax(axis=1)
                best_iou = sub[np.arange(preds.size), best]
                for t, thr in enumerate(self.iou_thresholds):
                    taken = np.zeros(gts.size, dtype=bool)
                    for row, pi in enumerate(preds):
                        if best_iou[row] >= thr:
                            tp[pi, t] = not taken[best[row]]
                            taken[best[row]] = True
        self.confusion.update_matrix(sid, cm)
        self.n_pos += np.bincount(gt_cls, minlength=c)[:c]
        self.det_class.append(classes)
        self.det_score.append(scores)
        self.det_tp.append(tp)
        self.scenes.append(sid)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = len(self.iou_thresholds)
        if not self.det_class:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros((0, t), bool)
        return np.concatenate(self.det_class), np.concatenate(self.det_score), np.concatenate(self.det_tp).reshape(-1, t)

    def compute(self) -> dict[str, Any]:
        cls, score, tp = self._arrays()
        ap: dict[str, Any] = {}
        for t, thr in enumerate(self.iou_thresholds):
            per_class = {}
            for c in range(1, self.num_classes):
                if self.n_pos[c] == 0:
                    per_class[c] = None
                    continue
                sel = np.flatnonzero(cls == c)
                order = sel[np.argsort(-score[sel], kind="stable")]
                per_class[c] = voc_ap(tp[order, t], int(self.n_pos[c]))
            ap[f"{thr:g}"] = {"map": nanmean(per_class.values()), "per_class": per_class}
        conf = self.confusion.compute()
        out: dict[str, Any] = {
            "voxel_miou": conf["miou"],
            "voxel_miou_dataset": conf["miou_dataset"],
            "per_class_iou": conf["per_class_iou"],
            "ap": ap,
            "ap25": ap["0.25"]["map"] if "0.25" in ap else None,
            "ap50": ap["0.5"]["map"] if "0.5" in ap else None,
            "num_gt": [int(v) for v in self.n_pos],
            "per_scene": {sid: {"voxel_miou": fnum(v["miou"])} for sid, v in conf["per_scene"].items()},
            "num_scenes": len(self.scenes),
        }
        return out
